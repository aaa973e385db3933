#include "bench/fork_bench.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "bench/fork_common.hpp"
#include "bench/fork_memory.hpp"
#include "bench/fork_options.hpp"
#include "bench/fork_paths.hpp"
#include "bench/fork_report.hpp"
#include "bench/fork_size.hpp"
#include "bench/raw_fork_reference.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/shell_pool.hpp"
#include "forkvm/template.hpp"

namespace forkvm::bench {
namespace {

constexpr std::chrono::seconds kPoolWait{180};

struct RawSeries {
  std::array<std::vector<double>, kRawStepCount> steps;
  std::vector<double> total, teardown;
};

/// The template's pool (if it has one) and the process's shell pool full again: nothing
/// prepares a VM beside what is measured next.
void wait_pools_full(const Template& t, size_t pool) {
  if (pool > 0 && !wait_pool_full(t, pool, kPoolWait)) {
    throw Error("the template's pool did not refill within " + std::to_string(kPoolWait.count()) + " s");
  }
  if (!wait_for_shell_pool(kPoolWait)) {
    throw Error("the shell pool did not refill within " + std::to_string(kPoolWait.count()) + " s");
  }
}

/// One forkvm fork, its first exec and its teardown. The warmed reference execs and the
/// teardown wait for the pools' refills to finish, so no measurement overlaps one (the
/// template pool's refill starts after the child's first exec: TemplateOptions::refill_hold).
void run_forkvm(Template& t, size_t pool, ForkSeries& s) {
  ForkedChild c = fork_and_exec_retry([&t] { return t.fork(); }, s.failures, 3,
                                      [&t, pool] { wait_pools_full(t, pool); });
  s.add(c);
  wait_pools_full(t, pool);
  double reaped = 0;
  s.teardown.push_back(destroy_timed(std::move(c.sandbox), &reaped));
  s.teardown_reaped.push_back(reaped);
}

void run_raw(const RawForkReference& raw, RawSeries& s) {
  RawForkTimings t;
  auto child = raw.fork(&t);
  for (size_t i = 0; i < kRawStepCount; ++i) s.steps[i].push_back(t.step_ms[i]);
  s.total.push_back(t.total_ms);
  s.teardown.push_back(RawForkReference::teardown(std::move(child)));
}

std::vector<std::string> header(const ForkBenchOptions& o, const VmImage& image,
                                const FdLimits& fd_limits) {
  std::vector<std::string> h = {
      "forkvm-bench fork: children of the snapshot " + o.snapshot + " (" +
          std::to_string(image.vcpus()) + " vCPU, " + std::to_string(image.memory_mib()) + " MiB)",
      "  fork latency = Template::fork() call -> the child's vCPUs are ready to run "
      "(ForkTimings::to_vcpus_ready), by build phase;",
      "  the raw reference is the minimal KVM call sequence of a fork, in the naive order, run in "
      "the same rounds (order rotated each round) so that both see the same host conditions.",
      "  Times in ms; n per row; every measurement starts with the pools full (no overlap with "
      "a refill; a template pool's refill waits for the child's first exec, "
      "TemplateOptions::refill_hold).",
  };
  h.push_back(fd_limit_line(fd_limits));
  if (std::getenv("FORKVM_IN_KVM_LAB") != nullptr) {
    h.push_back("  RUNNING IN KVM-LAB (QEMU-TCG, nested KVM): absolute times are 30-100x bare "
                "metal; only the ratios mean something.");
  } else {
    h.push_back("  Under kvm-lab absolute times are 30-100x bare metal: compare only ratios.");
  }
  return h;
}

Report latency_report(const ForkBenchOptions& o, Template& nopool, Template* pooled,
                      const RawForkReference& raw, const FdLimits& fd_limits) {
  ForkSeries np, pl;
  RawSeries rs;
  for (unsigned i = 0; i < o.n; ++i) {
    // Rotate the order each round so that no way of forking always goes first.
    for (unsigned j = 0; j < 3; ++j) {
      switch ((i + j) % 3) {
        case 0: run_raw(raw, rs); break;
        case 1: run_forkvm(nopool, 0, np); break;
        case 2:
          if (pooled != nullptr) run_forkvm(*pooled, o.pool, pl);
          break;
      }
    }
    std::fprintf(stderr, "  round %u/%u: raw %.2f  no pool %.2f", i + 1, o.n, rs.total.back(),
                 np.to_vcpus_ready.back());
    if (pooled != nullptr) std::fprintf(stderr, "  pooled %.2f", pl.to_vcpus_ready.back());
    std::fprintf(stderr, " ms\n");
  }

  Report r;
  r.header = header(o, *nopool.image(), fd_limits);
  r.setup = {{"snapshot", o.snapshot}, {"more_snapshots", o.more_snapshots},
             {"vcpus", raw.vcpus()}, {"memory_mib", raw.memory_bytes() >> 20}, {"n", o.n},
             {"pool", o.pool}, {"live", o.live}, {"fd_limit_soft", fd_limits.soft},
             {"fd_limit_hard", fd_limits.hard}, {"fd_limit_soft_before", fd_limits.soft_before},
             {"in_kvm_lab", std::getenv("FORKVM_IN_KVM_LAB") != nullptr}};

  ReportSection lat;
  lat.key = "fork_latency";
  lat.title = "fork latency: fork() call -> child's vCPUs ready to run (ms)";
  lat.notes.push_back("raw reference order (naive: irqchip before the memory slot, so the slot "
                      "waits for an SRCU grace period; forkvm registers slots first): " +
                      raw_step_order());
  lat.notes.push_back("the raw reference sets only those parts of the snapshot's vCPU state; no "
                      "XCRS/DEBUGREGS/VCPU_EVENTS/irqchip/PIT/clock restore, no devices, no "
                      "threads: a lower bound, not a usable VM");
  for (const ForkSeries* s : {&np, &pl}) {
    const std::string f = s->failures.note(o.n + s->failures.count());
    if (!f.empty()) lat.notes.push_back((s == &np ? "no pool: " : "pooled: ") + f);
  }
  lat.notes.push_back("no pool = no template pool; the process-wide shell pool is on (its "
                      "default) in these rows: " + std::to_string(np.shell_vm) + " of " +
                      std::to_string(np.to_vcpus_ready.size()) + " no-pool forks took a shell "
                      "(the fork-path section below compares with it off)");
  lat.notes.push_back("agent connection carried from the image (no connect, identity as the "
                      "first frame): " + std::to_string(np.carried_agent + pl.carried_agent) +
                      " of " + std::to_string(np.to_vcpus_ready.size() + pl.to_vcpus_ready.size()) +
                      " forks");
  add_fork_rows(lat, "nopool", "forkvm fork, no pool", np);
  if (pooled != nullptr) {
    add_fork_rows(lat, "pooled", "forkvm fork, pool of " + std::to_string(o.pool), pl);
    lat.notes.push_back(std::to_string(pl.pooled_vm) + " of " + std::to_string(o.n) +
                        " pooled forks got a VM from the pool");
  }
  lat.rows.push_back({"raw", "raw naive reference", "ms", summarize(rs.total)});
  for (size_t i = 0; i < kRawStepCount; ++i) {
    const auto step = static_cast<RawStep>(i);
    lat.rows.push_back({std::string("raw_") + raw_step_key(step),
                        std::string("  ") + raw_step_name(step), "ms", summarize(rs.steps[i])});
  }
  const Summary raw_s = summarize(rs.total);
  add_ratio(lat, "ratio_nopool", "forkvm no pool / naive raw", summarize(np.to_vcpus_ready), raw_s);
  if (pooled != nullptr) {
    add_ratio(lat, "ratio_pooled", "forkvm pooled / naive raw", summarize(pl.to_vcpus_ready), raw_s);
  }
  r.sections.push_back(std::move(lat));

  ReportSection ex;
  ex.key = "fork_to_exec";
  ex.title = "fork -> first answered " + first_exec_text() + " (ms)";
  ex.notes.push_back("to_ready = fork() call -> agent answered and identity set "
                     "(ForkTimings::to_ready); with a pool, its refill runs during the agent "
                     "connect and the exec");
  if (pooled != nullptr) {
    // Both templates are of one directory, so of one image (VmImage::open shares it): what the
    // pool's warm-up child taught, the no-pool template's forks take too.
    const TemplateStats st = pooled->stats();
    ex.notes.push_back(
        std::string("the pooled template's warm-up child (TemplateOptions::warm_up), before its "
                    "pool filled and before any measured fork: ") +
        (st.warmed_up ? "answered and taught the image its first touches"
         : st.warm_up_error.empty() ? "not made (the image knew its first touches already)"
                                    : "failed: " + st.warm_up_error) +
        "; the no-pool template's forks share that image, and with it what was learned");
  }
  auto exec_rows = [&](const std::string& key, const std::string& label, const ForkSeries& s) {
    ex.rows.push_back({key, label + ": fork() -> exec answered", "ms", summarize(s.to_exec)});
    ex.rows.push_back({key + "_to_ready", "  to_ready", "ms", summarize(s.to_ready)});
    ex.rows.push_back({key + "_agent_connect", "    agent connect (accept, greeting)", "ms",
                       summarize(s.agent_connect)});
    ex.rows.push_back({key + "_agent_accept", "      until accepted and greeted", "ms",
                       summarize(s.agent_accept)});
    ex.rows.push_back({key + "_agent_attempts", "      connection attempts", "n",
                       summarize(s.agent_attempts)});
    ex.rows.push_back({key + "_identity", "    identity (entropy, clock)", "ms",
                       summarize(s.identity)});
    ex.rows.push_back({key + "_ready_other", "    the rest (egress proxy and CA, threads)", "ms",
                       summarize(s.ready_other)});
    ex.rows.push_back({key + "_exec", "  first exec", "ms", summarize(s.exec)});
    ex.rows.push_back({key + "_prefaulted", "  memory taken ahead of the guest", "MiB",
                       summarize(s.prefaulted_mib)});
    ex.rows.push_back({key + "_premapped", "    of which mapped into NPT/EPT ahead", "MiB",
                       summarize(s.premapped_mib)});
    ex.rows.push_back({key + "_second_exec", "  the same exec again", "ms",
                       summarize(s.second_exec)});
    ex.rows.push_back({key + "_warm_exec", "  warmed: median of its runs 3-5", "ms",
                       summarize(s.warm_exec)});
    ex.rows.push_back({key + "_exec_guest", "  first exec, spawn -> exit as the guest saw it", "ms",
                       summarize(s.first_exec_guest)});
    ex.rows.push_back({key + "_warm_exec_guest", "  warmed exec, spawn -> exit as the guest saw it",
                       "ms", summarize(s.warm_exec_guest)});
    ex.rows.push_back({key + "_exec_start", "  first exec, request -> \"started\" (host)", "ms",
                       summarize(s.first_exec_start)});
    ex.rows.push_back({key + "_warm_exec_start", "  warmed exec, request -> \"started\" (host)", "ms",
                       summarize(s.warm_exec_start)});
    // KVM's counters: each one's row for the first exec, then for the warmed run.
    struct CounterRow {
      const char* key;
      const char* indent;
      const char* what;
      uint64_t KvmCounters::*member;
    };
    static constexpr CounterRow kCounterRows[] = {
        {"faults", "  ", "KVM page faults (pf_taken)", &KvmCounters::page_faults},
        {"exits", "  ", "VM exits", &KvmCounters::exits},
        {"halts", "    ", "of them HLT (guest idle)", &KvmCounters::halt_exits},
        {"mmio", "    ", "of them MMIO (device registers)", &KvmCounters::mmio_exits},
        {"io", "    ", "of them port I/O (serial console: an exit per byte)", &KvmCounters::io_exits},
        {"irq_exits", "    ", "of them host interrupts", &KvmCounters::irq_exits},
        {"emulations", "    ", "instructions emulated", &KvmCounters::emulations},
        {"injections", "  ", "interrupts injected", &KvmCounters::irq_injections},
    };
    const auto counter = [](const std::vector<KvmCounters>& v, uint64_t KvmCounters::*member) {
      std::vector<double> out;
      for (const KvmCounters& k : v) out.push_back(static_cast<double>(k.*member));
      return summarize(out);
    };
    if (!s.first_exec_kvm.empty()) {
      for (const CounterRow& c : kCounterRows) {
        ex.rows.push_back({key + "_exec_" + c.key, std::string(c.indent) + "first exec: " + c.what,
                           "n", counter(s.first_exec_kvm, c.member)});
        ex.rows.push_back({key + "_warm_exec_" + c.key,
                           std::string(c.indent) + "warmed exec: " + c.what, "n",
                           counter(s.warm_exec_kvm, c.member)});
      }
    }
    ex.rows.push_back({key + "_goal", "goal: vCPUs ready + 1.2 x warm exec", "ms",
                       summarize(s.exec_goal)});
    add_ratio(ex, key + "_first_vs_warm", label + " first exec / warm exec (goal <= 2)",
              summarize(s.exec), summarize(s.warm_exec));
    add_ratio(ex, key + "_to_exec_vs_goal", label + " fork -> exec / goal (goal <= 1)",
              summarize(s.to_exec), summarize(s.exec_goal));
  };
  exec_rows("nopool", "no pool", np);
  if (pooled != nullptr) {
    exec_rows("pooled", "pooled", pl);
    ex.notes.push_back("pooled VMs take the pages a child of the image touched by the end of "
                       "its first exec before their vCPUs run (TemplateOptions::prefault): " +
                       std::to_string(pl.prefaulted_vm) + " of " +
                       std::to_string(pl.to_exec.size()) + " pooled forks had (a VM pooled "
                       "before the image learned them had not)");
    ex.notes.push_back(
        "of those, " + std::to_string(pl.premapped_vm) + " also had the pages mapped into KVM's "
        "NPT/EPT tables before their vCPUs ran (KVM_PRE_FAULT_MEMORY, Linux 6.10+ with nested "
        "paging)" + (pl.premap_unavailable.empty() ? std::string()
                                                   : "; not mapped: " + pl.premap_unavailable));
  }
  r.sections.push_back(std::move(ex));

  ReportSection td;
  td.key = "teardown";
  td.title = "teardown of a child (ms; off the fork path)";
  td.notes.push_back("forkvm: Sandbox::shutdown() + destructor, what the caller waits; 'until "
                     "reaped' adds the rest (KVM VM closed, memory unmapped, temp dir removed) on "
                     "the reaper thread, up to Sandbox::wait_for_teardowns(); raw: close the vCPU "
                     "fds, munmap, close the VM fd and /dev/kvm");
  td.rows.push_back({"nopool", "forkvm child (no pool)", "ms", summarize(np.teardown)});
  td.rows.push_back({"nopool_reaped", "  until reaped", "ms", summarize(np.teardown_reaped)});
  if (pooled != nullptr) {
    td.rows.push_back({"pooled", "forkvm child (pooled)", "ms", summarize(pl.teardown)});
    td.rows.push_back({"pooled_reaped", "  until reaped", "ms", summarize(pl.teardown_reaped)});
  }
  td.rows.push_back({"raw", "raw reference child", "ms", summarize(rs.teardown)});
  r.sections.push_back(std::move(td));
  return r;
}

void print(const Report& r, bool json) {
  if (json) std::printf("%s\n", render_json(r).dump(2).c_str());
  else std::printf("%s", render_text(r).c_str());
  std::fflush(stdout);
}

int run(const ForkBenchOptions& o) {
  set_first_exec(o.first_exec);
  const FdLimits fd_limits = raise_fd_limit();
  TemplateOptions nopool_options;
  nopool_options.pool_size = 0;
  if (o.max_live > 0) {
    // "How many at once" only: pooled forks, as a server would make them.
    TemplateOptions po;
    po.pool_size = o.pool > 0 ? o.pool : 1;
    po.prefault = o.prefault;
    po.premap = o.premap;
    auto t = Template::open(o.snapshot, po);
    const VmImage& image = *t->image();
    Report r;
    r.header = header(o, image, fd_limits);
    r.setup = {{"snapshot", o.snapshot}, {"vcpus", image.vcpus()}, {"memory_mib", image.memory_mib()},
               {"pool", po.pool_size}, {"max_live", o.max_live}, {"prefault", po.prefault},
               {"premap", po.premap}, {"fd_limit_soft", fd_limits.soft},
               {"fd_limit_hard", fd_limits.hard}, {"fd_limit_soft_before", fd_limits.soft_before},
               {"in_kvm_lab", std::getenv("FORKVM_IN_KVM_LAB") != nullptr}};
    r.sections.push_back(
        measure_max_live(*t, po.pool_size, o.max_live, image.memory_mib() << 20, fd_limits));
    print(r, o.json);
    return 0;
  }
  auto nopool = Template::open(o.snapshot, nopool_options);
  std::shared_ptr<Template> pooled;
  if (o.pool > 0) {
    TemplateOptions po;
    po.pool_size = o.pool;
    po.premap = o.premap;
    po.prefault = o.prefault;
    po.verify_memory = false;  // the first Template verified this snapshot's memory just now
    pooled = Template::open(o.snapshot, po);
  }
  const RawForkReference raw(o.snapshot);
  if (pooled && !wait_pool_full(*pooled, o.pool, kPoolWait)) {
    throw Error("the template's pool did not fill within " + std::to_string(kPoolWait.count()) + " s");
  }
  Report r = latency_report(o, *nopool, pooled.get(), raw, fd_limits);
  if (o.paths > 0) r.sections.push_back(measure_fork_paths(o.snapshot, o.paths, *nopool, raw));
  if (o.sustained > 0) r.sections.push_back(measure_sustained(*nopool, o.sustained));
  if (o.live > 0) {
    Template& t = pooled ? *pooled : *nopool;
    r.sections.push_back(measure_live_memory(
        t, pooled ? o.pool : 0, o.live, pooled ? "pool of " + std::to_string(o.pool) : "no pool"));
  }
  if (!o.more_snapshots.empty()) {
    // Free the first part's templates (and their pool) before the size comparison.
    pooled.reset();
    nopool.reset();
    std::vector<std::string> dirs{o.snapshot};
    dirs.insert(dirs.end(), o.more_snapshots.begin(), o.more_snapshots.end());
    r.sections.push_back(measure_size_scaling(dirs, o.n, /*first_verified=*/true));
  }
  print(r, o.json);
  return 0;
}

}  // namespace

int fork_bench(std::span<char* const> args) {
  return run_subcommand("fork", args, kForkBenchUsage, parse_fork_options, run);
}

}  // namespace forkvm::bench
