#include "bench/soak_bench.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/fork_common.hpp"
#include "bench/scratch_dir.hpp"
#include "bench/soak_cycle.hpp"
#include "bench/soak_options.hpp"
#include "bench/soak_report.hpp"
#include "bench/stats.hpp"
#include "forkvm/host_threads.hpp"
#include "forkvm/shell_pool.hpp"

namespace forkvm::bench {
namespace {

/// Errors printed in full; later ones are only counted.
constexpr unsigned kErrorsShown = 10;

/// The template under test and what keeps it alive: a booted root sandbox when there is no
/// --snapshot (kept running to the end, so its resources are constant over the run).
struct SoakTemplate {
  std::unique_ptr<Sandbox> root;
  std::shared_ptr<Template> tmpl;
  std::string what;
};

SoakTemplate make_soak_template(const SoakOptions& o, const std::string& runtime_dir) {
  SoakTemplate t;
  if (!o.snapshot.empty()) {
    TemplateOptions options;
    options.runtime_dir = runtime_dir;
    t.tmpl = Template::open(o.snapshot, options);
    t.what = "Template::open(" + o.snapshot + ")";
    return t;
  }
  const std::string dir = o.image_dir.empty() ? std::string(FORKVM_BENCH_IMAGE_DIR) : o.image_dir;
  SandboxConfig c = image_sandbox_config(dir, o.vcpus, o.memory_mib);
  c.runtime_dir = runtime_dir;
  t.root = Sandbox::create(c);
  TemplateOptions options;
  options.runtime_dir = runtime_dir;
  t.tmpl = t.root->make_template(options);
  t.what = "make_template() of a sandbox booted from " + dir + " (" + std::to_string(o.vcpus) +
           " vCPU, " + std::to_string(o.memory_mib) + " MiB)";
  return t;
}

int run(const SoakOptions& o) {
  const FdLimits limits = raise_fd_limit();
  ScratchDir runtime("soak");  // every sandbox's temp dir, so that they can be counted apart
  SoakTemplate t = make_soak_template(o, runtime.path());
  ForkConfig fc;
  fc.boot_timeout = std::chrono::seconds(120);
  fc.request_timeout = std::chrono::seconds(120);
  SoakLoop loop(t.tmpl, fc, o.parent_every);

  std::printf("forkvm-bench soak: %u cycles on %s; the parent forked every %u; report every %u%s\n",
              o.cycles, t.what.c_str(), o.parent_every, o.report_every,
              std::getenv("FORKVM_IN_KVM_LAB") != nullptr ? " (in kvm-lab)" : "");
  std::printf("%s\n", fd_limit_line(limits).c_str());
  std::printf("  runtime dir %s; counts taken after the reaper drained and the shell pool refilled\n",
              runtime.path().c_str());
  std::printf("%s\n", soak_table_header().c_str());

  std::vector<SoakPoint> points;
  auto report = [&](unsigned cycle, unsigned failures, const std::vector<double>& window,
                    const std::vector<double>& parent_window) {
    SoakPoint p;
    p.cycle = cycle;
    p.counters = settled_soak_counters(runtime.path());
    p.failures = failures;
    p.cycle_ms = summarize(window);
    p.parent_ms = summarize(parent_window);
    std::printf("%s\n", soak_table_row(p).c_str());
    std::fflush(stdout);
    points.push_back(p);
  };
  report(0, 0, {}, {});

  unsigned failures = 0, done = 0;
  std::vector<double> window, parent_window;
  while (done < o.cycles) {
    const SoakCycleResult r = loop.run(done++);
    if (r.cycle_ms) window.push_back(*r.cycle_ms);
    if (r.parent_ms) parent_window.push_back(*r.parent_ms);
    for (const std::string& e : r.errors) {
      if (failures++ < kErrorsShown) std::fprintf(stderr, "[soak] FAILED %s\n", e.c_str());
    }
    const bool stopping = failures >= o.stop_after;
    if (done % o.report_every == 0 || done == o.cycles || stopping) {
      report(done, failures, window, parent_window);
      window.clear();
      parent_window.clear();
    }
    if (stopping) {
      std::printf("stopped after %u failures (--stop-after)\n", failures);
      break;
    }
  }
  loop.shutdown();
  t.tmpl.reset();
  if (t.root) t.root->shutdown();
  Sandbox::wait_for_teardowns();  // before the runtime dir goes

  const ShellPoolStats pool = shell_pool_stats();
  const ThreadFilterStats filters = thread_filter_stats();
  std::printf("shell pool: %llu taken, %llu missed, %llu build failures; thread filters: %llu calls denied\n",
              static_cast<unsigned long long>(pool.taken), static_cast<unsigned long long>(pool.missed),
              static_cast<unsigned long long>(pool.build_failures),
              static_cast<unsigned long long>(filters.denied_calls));
  const std::vector<std::string> why = soak_verdict(points);
  std::printf("verdict: %s\n", why.empty() ? "PASS (flat after warm-up, no failure)" : "FAIL");
  for (const std::string& w : why) std::printf("  %s\n", w.c_str());
  if (o.json) {
    nlohmann::json j;
    j["cycles"] = done;
    j["parent_every"] = o.parent_every;
    j["template"] = t.what;
    j["failures"] = failures;
    j["points"] = nlohmann::json::array();
    for (const SoakPoint& p : points) j["points"].push_back(to_json(p));
    j["verdict"] = why;
    j["denied_calls"] = filters.denied_calls;
    std::printf("%s\n", j.dump(2).c_str());
  }
  return why.empty() ? 0 : 1;
}

}  // namespace

int soak_bench(std::span<char* const> args) {
  return run_subcommand("soak", args, kSoakUsage, parse_soak_options, run);
}

}  // namespace forkvm::bench
