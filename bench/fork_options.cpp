#include "bench/fork_options.hpp"

#include <cstdlib>

namespace forkvm::bench {
unsigned parse_count(const std::string& option, const std::string& text, unsigned min, unsigned max) {
  char* end = nullptr;
  const bool digits_only = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  const unsigned long v = digits_only ? std::strtoul(text.c_str(), &end, 10) : 0;
  if (!digits_only || end == nullptr || *end != '\0' || v < min || v > max) {
    throw UsageError(option + " needs a whole number from " + std::to_string(min) + " to " +
                     std::to_string(max) + ", not '" + text + "'");
  }
  return static_cast<unsigned>(v);
}

const char* const kForkBenchUsage =
    "usage: forkvm-bench fork --snapshot DIR [--snapshot DIR2]... [-n N] [--pool P] [--live K]\n"
    "                         [--max-live N] [--paths N] [--sustained K] [--premap 0|1]\n"
    "                         [--prefault 0|1]\n"
    "                         [--first-exec \"ARGV...\"] [--json]\n"
    "  fork latency (phases), a naive raw-KVM fork timed in the same run, fork -> first exec,\n"
    "  memory per live child and teardown, for children of the snapshot in DIR\n"
    "  (`forkvm snapshot create DIR`). --max-live N: only count how many pooled children can be\n"
    "  alive at once (up to N). Defaults: -n 20, --pool 2, --live 10. A second --snapshot (e.g.\n"
    "  the same image with more RAM) adds its no-pool fork latency, measured in the same rounds,\n"
    "  and the ratio of the p50s. --first-exec: the command each child runs first (default\n"
    "  \"true\"; e.g. \"python3 -c pass\" for a template on the Debian root filesystem).\n"
    "  --paths N: rounds of Template::fork, Sandbox::fork and Sandbox::restore each with the\n"
    "  shell pool warm and off, against the raw reference (default 10; 0 skips). --sustained K:\n"
    "  K forks back to back with the shell pool off and on, children per second (default 10).\n"
    "  --premap 0: the pooled template does not map the pages children touch first into its\n"
    "  VMs' NPT/EPT tables ahead (TemplateOptions::premap; default 1). --prefault 0: nor copy\n"
    "  and map them into its VMs' memory (TemplateOptions::prefault; default 1). Both apply to\n"
    "  --max-live too.\n";

const char* const kForkRunningUsage =
    "usage: forkvm-bench fork-running [-n N] [--depth D] [--write-mib M] [--vcpus N]\n"
    "                                 [--memory MiB] [--image-dir DIR] [--json]\n"
    "  boots one sandbox, then Sandbox::fork() of it N times (freeze, latency, exec, teardown,\n"
    "  the parent's image growth) and a chain of forks of forks D deep (each level writes M MiB\n"
    "  first). Defaults: -n 20, --depth 5, --write-mib 2, --vcpus 1, --memory 256.\n";

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
      const std::string& dir = value();
      if (dir.empty()) throw UsageError("--snapshot needs a directory");
      if (have_snapshot) o.more_snapshots.push_back(dir);
      else o.snapshot = dir;
      have_snapshot = true;
    } else if (a == "-n") {
      o.n = parse_count(a, value(), 1);
    } else if (a == "--pool") {
      o.pool = parse_count(a, value(), 0);
    } else if (a == "--premap") {
      const std::string& v = value();
      if (v != "0" && v != "1") throw UsageError("--premap takes 0 or 1, not '" + v + "'");
      o.premap = v == "1";
    } else if (a == "--prefault") {
      const std::string& v = value();
      if (v != "0" && v != "1") throw UsageError("--prefault takes 0 or 1, not '" + v + "'");
      o.prefault = v == "1";
    } else if (a == "--live") {
      o.live = parse_count(a, value(), 0);
    } else if (a == "--max-live") {
      o.max_live = parse_count(a, value(), 1);
    } else if (a == "--paths") {
      o.paths = parse_count(a, value(), 0);
    } else if (a == "--sustained") {
      o.sustained = parse_count(a, value(), 0);
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--first-exec") {
      o.first_exec.clear();
      const std::string& line = value();
      for (size_t at = 0; at < line.size();) {
        const size_t end = std::min(line.find(' ', at), line.size());
        if (end > at) o.first_exec.push_back(line.substr(at, end - at));
        at = end + 1;
      }
      if (o.first_exec.empty()) throw UsageError("--first-exec needs a command");
    } else {
      throw UsageError("unknown option '" + a + "'");
    }
  }
  if (!have_snapshot) throw UsageError("--snapshot DIR is required");
  if (o.max_live > 0 && !o.more_snapshots.empty()) {
    throw UsageError("--max-live uses one snapshot; give --snapshot once");
  }
  return o;
}

ForkRunningOptions parse_fork_running_options(std::span<const std::string> args) {
  ForkRunningOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
      return args[++i];
    };
    if (a == "-n") {
      o.n = parse_count(a, value(), 1);
    } else if (a == "--depth") {
      o.depth = parse_count(a, value(), 0);
    } else if (a == "--write-mib") {
      o.write_mib = parse_count(a, value(), 0);
    } else if (a == "--vcpus") {
      o.vcpus = parse_count(a, value(), 1);
    } else if (a == "--memory") {
      o.memory_mib = parse_count(a, value(), 64);
    } else if (a == "--image-dir") {
      o.image_dir = value();
      if (o.image_dir.empty()) throw UsageError("--image-dir needs a directory");
    } else if (a == "--json") {
      o.json = true;
    } else {
      throw UsageError("unknown option '" + a + "'");
    }
  }
  // Every level's file stays in the deepest guest's RAM (its /tmp is a RAM file system).
  if (static_cast<unsigned long>(o.write_mib) * o.depth >= o.memory_mib / 2) {
    throw UsageError("--write-mib x --depth (" + std::to_string(o.write_mib * o.depth) +
                     " MiB) must stay below half of --memory " + std::to_string(o.memory_mib));
  }
  return o;
}

}  // namespace forkvm::bench
