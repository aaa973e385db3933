#include "bench/fork_stress_options.hpp"

#include <algorithm>
#include <sstream>

#include "bench/fork_options.hpp"

namespace forkvm::bench {
namespace {

std::vector<StressPath> parse_paths(const std::string& text) {
  std::vector<StressPath> out;
  std::stringstream in(text);
  std::string word;
  while (std::getline(in, word, ',')) {
    StressPath p;
    if (word == "template") p = StressPath::kTemplate;
    else if (word == "pool") p = StressPath::kPool;
    else if (word == "chain") p = StressPath::kChain;
    else if (word == "snapshot") p = StressPath::kSnapshot;
    else if (word == "fresh-template") p = StressPath::kFreshTemplate;
    else if (word == "fresh-snapshot") p = StressPath::kFreshSnapshot;
    else throw UsageError("--paths: unknown path '" + word +
                          "' (template, pool, chain, snapshot, fresh-template, fresh-snapshot)");
    if (std::find(out.begin(), out.end(), p) != out.end()) throw UsageError("--paths names '" + word + "' twice");
    out.push_back(p);
  }
  if (out.empty()) throw UsageError("--paths needs at least one path");
  return out;
}

}  // namespace

const char* to_string(StressPath p) noexcept {
  switch (p) {
    case StressPath::kTemplate: return "template";
    case StressPath::kPool: return "pool";
    case StressPath::kChain: return "chain";
    case StressPath::kSnapshot: return "snapshot";
    case StressPath::kFreshTemplate: return "fresh-template";
    case StressPath::kFreshSnapshot: return "fresh-snapshot";
  }
  return "?";
}

const char* const kForkStressUsage =
    "usage: forkvm-bench fork-stress [-n N] [--paths template,pool,chain,snapshot] [--live K]\n"
    "                                [--depth D] [--pool P] [--per-image K] [--refork R]\n"
    "                                [--stop-after F] [--vcpus N] [--memory MiB]\n"
    "                                [--image-dir DIR] [--out DIR] [--trace] [--json]\n"
    "  soundness of forks, not speed: boots one sandbox and makes N children per path the way\n"
    "  the e2e tests do (make_template + Template::fork without and with a pool of P;\n"
    "  Sandbox::fork chains D deep; Template::open of a snapshot), checks that each answers with\n"
    "  its parent's state, keeps K alive at once, and checks that each image's pages never\n"
    "  change. A failed fork is never retried: it is counted, and its report (the error with the\n"
    "  vCPU's registers and last exits, the console tail, changed image pages, and with --trace\n"
    "  the vCPU thread's last KVM trace events) goes to --out. After a failure, R more children\n"
    "  of the same image are forked and their failures reported apart (not counted): many mean\n"
    "  a bad image, none a race in one child. A path stops after F failures.\n"
    "  Paths fresh-template and fresh-snapshot (not defaults) boot a new sandbox for each image,\n"
    "  as the e2e tests' parents are, and fork it K times; a fresh-snapshot image that failed is\n"
    "  kept in --out for re-forking.\n"
    "  Defaults: -n 500, paths template,pool,chain,snapshot, --live 4, --depth 5, --pool 2,\n"
    "  --per-image 3, --refork 10, --stop-after 5, 1 vCPU, 256 MiB.\n"
    "  Exit status 0 when no fork failed, 1 otherwise.\n";

ForkStressOptions parse_fork_stress_options(std::span<const std::string> args) {
  ForkStressOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
      return args[++i];
    };
    if (a == "-n") o.n = parse_count(a, value(), 1, 1000000);
    else if (a == "--paths") o.paths = parse_paths(value());
    else if (a == "--live") o.live = parse_count(a, value(), 1, 1000);
    else if (a == "--depth") o.depth = parse_count(a, value(), 1, 64);
    else if (a == "--pool") o.pool = parse_count(a, value(), 1, 64);
    else if (a == "--per-image") o.per_image = parse_count(a, value(), 1, 1000);
    else if (a == "--refork") o.refork = parse_count(a, value(), 0, 1000);
    else if (a == "--stop-after") o.stop_after = parse_count(a, value(), 1, 1000000);
    else if (a == "--vcpus") o.vcpus = parse_count(a, value(), 1, 64);
    else if (a == "--memory") o.memory_mib = parse_count(a, value(), 64, 65536);
    else if (a == "--image-dir") o.image_dir = value();
    else if (a == "--out") o.out_dir = value();
    else if (a == "--trace") o.trace = true;
    else if (a == "--json") o.json = true;
    else throw UsageError("unknown option '" + a + "'");
  }
  return o;
}

}  // namespace forkvm::bench
