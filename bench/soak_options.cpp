#include "bench/soak_options.hpp"

#include "bench/fork_options.hpp"

namespace forkvm::bench {

const char* const kSoakUsage =
    "usage: forkvm-bench soak [-n|--cycles N] [--parent-every K] [--report-every R]\n"
    "                         [--stop-after F] [--snapshot DIR | --vcpus N --memory MiB\n"
    "                         --image-dir DIR] [--json]\n"
    "  leaks and failures over many cycles, not speed: N cycles on one template, each a\n"
    "  Template::fork() child that runs exec([\"echo\", ...]) (exit 0, stdout checked), writes a\n"
    "  file and reads it back (bytes checked) and is shut down. A long-lived parent (the\n"
    "  template's first child, kept for the whole run) is changed and Sandbox::fork()ed every K\n"
    "  cycles (each fork freezes it again, adding an image layer); that grandchild does the same\n"
    "  checks (it must also see the parent's change) and is shut down. The template is the\n"
    "  snapshot in --snapshot DIR (`forkvm snapshot create`), else a sandbox booted from the\n"
    "  image and frozen with make_template(). Every R cycles (and after the last), once the\n"
    "  reaper has finished every teardown and the shell pool is full again, prints this\n"
    "  process's open fds, threads, RSS (anon/file/shmem), the entries under the run's private\n"
    "  runtime dir (every sandbox's temp dir), failures so far and the window's cycle latency\n"
    "  (fork to teardown, p50/p90/p99; the parent's forks apart). A failure is counted and its\n"
    "  error printed (the first 10); the run stops after F failures.\n"
    "  Columns: lyr = fds that are image-layer memfds, tmp = entries under the runtime dir,\n"
    "  deny = system calls forkvm's thread filters refused since the process began.\n"
    "  Exit status 0 only when no cycle failed, no thread filter refused a call after the first\n"
    "  sample, and at the end the fds other than layer memfds, the threads and the runtime\n"
    "  entries are no higher than at the first report (the first R cycles are the warm-up;\n"
    "  with fewer than two reports, than before the first cycle), and the layer memfds at most\n"
    "  3 higher (the parent's image holds 1 to 4 layers of its own between merges). RSS is\n"
    "  printed, not judged. Defaults: -n 1000, --parent-every 10, --report-every 100,\n"
    "  --stop-after 50, 1 vCPU, 256 MiB.\n";

SoakOptions parse_soak_options(std::span<const std::string> args) {
  SoakOptions o;
  bool machine_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
      return args[++i];
    };
    if (a == "-n" || a == "--cycles") o.cycles = parse_count(a, value(), 1, 1000000);
    else if (a == "--parent-every") o.parent_every = parse_count(a, value(), 1, 1000000);
    else if (a == "--report-every") o.report_every = parse_count(a, value(), 1, 1000000);
    else if (a == "--stop-after") o.stop_after = parse_count(a, value(), 1, 1000000);
    else if (a == "--snapshot") {
      o.snapshot = value();
      if (o.snapshot.empty()) throw UsageError("--snapshot needs a directory");
    } else if (a == "--vcpus") {
      o.vcpus = parse_count(a, value(), 1, 64);
      machine_given = true;
    } else if (a == "--memory") {
      o.memory_mib = parse_count(a, value(), 64, 65536);
      machine_given = true;
    } else if (a == "--image-dir") {
      o.image_dir = value();
      machine_given = true;
    } else if (a == "--json") o.json = true;
    else throw UsageError("unknown option '" + a + "'");
  }
  if (machine_given && !o.snapshot.empty()) {
    throw UsageError("--vcpus, --memory and --image-dir choose the booted template; a --snapshot fixes its own");
  }
  return o;
}

}  // namespace forkvm::bench
