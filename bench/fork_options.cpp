#include "bench/fork_options.hpp"

#include <cstdlib>

namespace forkvm::bench {
namespace {

/// A decimal number in [min, 100000].
unsigned parse_count(const std::string& option, const std::string& text, unsigned min) {
  char* end = nullptr;
  const bool digits_only = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  const unsigned long v = digits_only ? std::strtoul(text.c_str(), &end, 10) : 0;
  if (!digits_only || end == nullptr || *end != '\0' || v < min || v > 100000) {
    throw UsageError(option + " needs a whole number from " + std::to_string(min) +
                     " to 100000, not '" + text + "'");
  }
  return static_cast<unsigned>(v);
}

}  // namespace

const char* const kForkBenchUsage =
    "usage: forkvm-bench fork --snapshot DIR [-n N] [--pool P] [--live K] [--max-live N] [--json]\n"
    "  fork latency (phases), a naive raw-KVM fork timed in the same run, fork -> first exec,\n"
    "  memory per live child and teardown, for children of the snapshot in DIR\n"
    "  (`forkvm snapshot create DIR`). --max-live N: only count how many pooled children can be\n"
    "  alive at once (up to N). Defaults: -n 20, --pool 2, --live 10.\n";

ForkBenchOptions parse_fork_options(std::span<const std::string> args) {
  ForkBenchOptions o;
  bool have_snapshot = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
      return args[++i];
    };
    if (a == "--snapshot") {
      o.snapshot = value();
      if (o.snapshot.empty()) throw UsageError("--snapshot needs a directory");
      have_snapshot = true;
    } else if (a == "-n") {
      o.n = parse_count(a, value(), 1);
    } else if (a == "--pool") {
      o.pool = parse_count(a, value(), 0);
    } else if (a == "--live") {
      o.live = parse_count(a, value(), 0);
    } else if (a == "--max-live") {
      o.max_live = parse_count(a, value(), 1);
    } else if (a == "--json") {
      o.json = true;
    } else {
      throw UsageError("unknown option '" + a + "'");
    }
  }
  if (!have_snapshot) throw UsageError("--snapshot DIR is required");
  return o;
}

}  // namespace forkvm::bench
