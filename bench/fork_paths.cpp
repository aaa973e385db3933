#include "bench/fork_paths.hpp"

#include <array>
#include <cstdio>
#include <functional>
#include <memory>
#include <vector>

#include "bench/fork_common.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/sandbox.hpp"
#include "forkvm/shell_pool.hpp"

namespace forkvm::bench {
namespace {

constexpr std::chrono::seconds kShellWait{120};

/// The shell pool with its default options (on) or off (per_shape 0), and, when on, full
/// before returning, so that no measurement overlaps its refill.
void shells(bool on) {
  ShellPoolOptions o;
  if (!on) o.per_shape = 0;
  configure_shell_pool(o);
  if (on && !wait_for_shell_pool(kShellWait)) {
    throw Error("the shell pool did not fill within " + std::to_string(kShellWait.count()) +
                " s: " + shell_pool_stats().last_error);
  }
}

/// One way of making a child, with the shell pool on or off.
struct Path {
  std::string key, label;
  bool shells_on;
  std::function<std::unique_ptr<Sandbox>()> make;
  ForkSeries series;
};

void run_path(Path& p) {
  shells(p.shells_on);
  ForkedChild c = fork_and_exec_retry(p.make, p.series.failures);
  p.series.add(c);
  double reaped = 0;
  p.series.teardown.push_back(destroy_timed(std::move(c.sandbox), &reaped));
  p.series.teardown_reaped.push_back(reaped);
  shells(true);
}

}  // namespace

ReportSection measure_fork_paths(const std::string& snapshot, unsigned n, Template& nopool,
                                 const RawForkReference& raw) {
  shells(true);
  // The running sandbox Sandbox::fork() forks: a restore of the same snapshot.
  SandboxRestoreConfig rc;
  rc.verify_memory = false;  // the benchmark's Template verified it
  rc.boot_timeout = std::chrono::seconds(300);
  rc.request_timeout = std::chrono::seconds(120);
  std::unique_ptr<Sandbox> parent = Sandbox::restore(snapshot, rc);
  ForkConfig fc;
  fc.boot_timeout = rc.boot_timeout;
  fc.request_timeout = rc.request_timeout;
  auto template_fork = [&] { return nopool.fork(fc); };
  auto sandbox_fork = [&] { return parent->fork(fc); };
  auto restore = [&] { return Sandbox::restore(snapshot, rc); };
  std::vector<Path> paths;
  paths.push_back({"template_shell", "Template::fork, shell pool warm", true, template_fork, {}});
  paths.push_back({"template_inline", "Template::fork, shell pool off", false, template_fork, {}});
  paths.push_back({"sandbox_fork_shell", "Sandbox::fork, shell pool warm", true, sandbox_fork, {}});
  paths.push_back({"sandbox_fork_inline", "Sandbox::fork, shell pool off", false, sandbox_fork, {}});
  paths.push_back({"restore_shell", "Sandbox::restore, shell pool warm", true, restore, {}});
  paths.push_back({"restore_inline", "Sandbox::restore, shell pool off", false, restore, {}});
  std::vector<double> raw_total, raw_image;
  const size_t ways = paths.size() + 1;
  for (unsigned i = 0; i < n; ++i) {
    for (size_t j = 0; j < ways; ++j) {
      const size_t w = (i + j) % ways;
      if (w == paths.size()) {
        RawForkTimings t;
        RawForkReference::teardown(raw.fork(&t));
        raw_total.push_back(t.total_ms);
        double image = 0;
        for (size_t k = 0; k < kRawStepCount; ++k) {
          if (raw_step_needs_image(static_cast<RawStep>(k))) image += t.step_ms[k];
        }
        raw_image.push_back(image);
      } else {
        run_path(paths[w]);
      }
    }
    std::fprintf(stderr, "  paths round %u/%u: raw %.2f", i + 1, n, raw_total.back());
    for (const Path& p : paths) std::fprintf(stderr, "  %s %.2f", p.key.c_str(), p.series.to_vcpus_ready.back());
    std::fprintf(stderr, " ms\n");
  }
  parent->shutdown();

  ReportSection sec;
  sec.key = "fork_paths";
  sec.title = "every fork path, shell pool warm vs off: call -> child's vCPUs ready (ms)";
  sec.notes.push_back("a shell = KVM VM, memory slots over reserved RAM, irqchip, PIT, legacy "
                      "devices, vCPUs (forkvm/shell_pool.hpp); with one, a fork maps the image "
                      "into it, adds the virtio devices, restores the state and starts the vCPUs");
  sec.notes.push_back("Sandbox::fork includes freezing the parent (ForkTimings::freeze); "
                      "Sandbox::restore counts from the call, opening the snapshot included "
                      "(memory digest not re-checked; the directory is open already in this "
                      "process, so VmImage::open reuses that image and reads no file); no "
                      "template pool anywhere here");
  const Summary raw_s = summarize(raw_total);
  for (const Path& p : paths) {
    add_fork_rows(sec, p.key, p.label, p.series);
    sec.rows.push_back({p.key + "_to_exec", "  -> first exec answered", "ms", summarize(p.series.to_exec)});
    sec.notes.push_back(p.label + ": " + std::to_string(p.series.shell_vm) + " of " +
                        std::to_string(p.series.to_vcpus_ready.size()) + " took a shell" +
                        (p.series.failures.count() > 0 ? "; " + p.series.failures.note(n) : ""));
  }
  sec.rows.push_back({"raw", "raw naive reference", "ms", raw_s});
  sec.rows.push_back({"raw_image", "  of it, the calls that need the image", "ms", summarize(raw_image)});
  sec.notes.push_back("the calls that need the image = mmap of the memory file and the vCPU state "
                      "setters (CPUID, SREGS, REGS, XSAVE, LAPIC, MSRS, MP_STATE), per round: no "
                      "shell can make them ahead, so their share of the raw sequence is the least "
                      "a fork that takes a shell can reach without setting image state ahead");
  add_ratio(sec, "ratio_raw_image", "raw calls that need the image / naive raw",
            summarize(raw_image), raw_s);
  for (const Path& p : paths) {
    add_ratio(sec, "ratio_" + p.key, p.label + " / naive raw", summarize(p.series.to_vcpus_ready), raw_s);
  }
  for (size_t i = 0; i + 1 < paths.size(); i += 2) {
    add_ratio(sec, "ratio_" + paths[i].key + "_vs_inline", paths[i].label + " / shell pool off",
              summarize(paths[i].series.to_vcpus_ready), summarize(paths[i + 1].series.to_vcpus_ready));
  }
  return sec;
}

ReportSection measure_sustained(Template& nopool, unsigned count) {
  ReportSection sec;
  sec.key = "sustained";
  sec.title = "forks per second sustained, " + std::to_string(count) +
              " Template::fork() back to back, no template pool (each until its agent answered)";
  for (const bool on : {false, true}) {
    shells(on);
    const ShellPoolStats before = shell_pool_stats();
    std::vector<std::unique_ptr<Sandbox>> children;
    std::vector<double> each;
    const auto t0 = Clock::now();
    for (unsigned i = 0; i < count; ++i) {
      const auto f0 = Clock::now();
      children.push_back(nopool.fork());
      each.push_back(ms_since(f0));
    }
    const double total_s = ms_since(t0) / 1000.0;
    const ShellPoolStats after = shell_pool_stats();
    const std::string key = on ? "shells_on" : "shells_off";
    const std::string label = on ? "shell pool on (2 ready at the start)" : "shell pool off";
    sec.rows.push_back({key, label + ": fork() -> ready, each", "ms", summarize(each)});
    sec.values.push_back({key + "_per_second", label + ": children per second", "1/s",
                          count / total_s, true});
    sec.notes.push_back(label + ": " + std::to_string(after.taken - before.taken) +
                        " took a shell, " + std::to_string(after.missed - before.missed) +
                        " built inline");
    for (auto& c : children) c->shutdown();
    children.clear();
    Sandbox::wait_for_teardowns();
  }
  shells(true);
  return sec;
}

}  // namespace forkvm::bench
