// Helpers shared by the parts of `forkvm-bench fork` (fork_bench.cpp, fork_memory.cpp).
#pragma once

#include <chrono>
#include <cstdio>
#include <span>
#include <utility>
#include <cstddef>
#include <memory>
#include <optional>
#include <functional>
#include <string>
#include <vector>

#include "bench/fork_failures.hpp"
#include "bench/fork_options.hpp"
#include "bench/fork_report.hpp"
#include "bench/proc_status.hpp"
#include "forkvm/sandbox.hpp"
#include "forkvm/template.hpp"

namespace forkvm::bench {

using Clock = std::chrono::steady_clock;

inline double to_ms(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}
inline double ms_since(Clock::time_point t0) { return to_ms(Clock::now() - t0); }

/// The shape of every fork subcommand: parses `args` with `parse` (a UsageError prints the
/// message and `usage`, exit 2), then returns `run(options)` (an exception is printed, exit 1).
/// `name` is the subcommand, e.g. "fork-stress".
template <class Parse, class Run>
int run_subcommand(const char* name, std::span<char* const> args, const char* usage, Parse parse,
                   Run run) {
  decltype(parse(std::declval<std::span<const std::string>>())) options;
  try {
    const std::vector<std::string> a(args.begin(), args.end());
    options = parse(a);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "forkvm-bench %s: %s\n%s", name, e.what(), usage);
    return 2;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench %s: %s\n", name, e.what());
    return 1;
  }
}

/// A sandbox of the image in `image_dir` (its bzImage and initramfs.cpio.gz) with `vcpus` and
/// `memory_mib`, and the generous deadlines a benchmark inside kvm-lab needs (boot 300 s,
/// requests 120 s).
SandboxConfig image_sandbox_config(const std::string& image_dir, unsigned vcpus, uint64_t memory_mib);

/// Waits until `t` holds `want` pooled VMs, so that a measurement never overlaps the pool's
/// background refill. Returns false when `limit` passed first.
bool wait_pool_full(const Template& t, size_t want, std::chrono::milliseconds limit);

/// One child made by Template::fork() and its first exec(["true"]).
struct ForkedChild {
  std::unique_ptr<Sandbox> sandbox;
  double fork_call_ms = 0;  ///< fork() call -> returned (agent answered, identity set)
  double exec_ms = 0;       ///< the first exec alone
  double to_exec_ms = 0;    ///< fork() call -> that exec answered
  double second_exec_ms = 0;  ///< the same exec again right after
  double warm_exec_ms = 0;    ///< the median of runs 3-5 of it: the warmed reference
  /// The guest's own measure of the first exec and of the warmed reference (ExecResult::duration:
  /// the command's run from its spawn to its exit, in ms), which tells the guest's part of an
  /// exec from the way there and back.
  double first_exec_guest_ms = 0, warm_exec_guest_ms = 0;
  /// The host's time from the request to the agent's "started" (ExecResult::until_started) of
  /// the first exec and of the warmed reference: the spawn apart from the run and the answer.
  double first_exec_start_ms = 0, warm_exec_start_ms = 0;
  /// KVM's counters (Sandbox::kvm_counters) over the first exec and over the warmed run;
  /// nullopt when this host's KVM has none.
  std::optional<KvmCounters> first_exec_kvm, warm_exec_kvm;
};

/// The command fork_and_exec() runs first in each child (default ["true"]; `forkvm-bench fork
/// --first-exec`), and how titles show it.
void set_first_exec(std::vector<std::string> argv);
/// That command's argv.
const std::vector<std::string>& first_exec_argv();
std::string first_exec_text();

/// Calls `fork` (Template::fork or Sandbox::fork), times it, and runs the first exec
/// (set_first_exec) in the child, then the warmed reference runs. `settle` (optional) runs
/// between the two: forkvm-bench fork waits there for its pools to refill, so that the
/// reference exec does not run beside a VM being prepared. Throws what `fork` throws, and
/// forkvm::Error when the exec does not exit 0.
ForkedChild fork_and_exec(const std::function<std::unique_ptr<Sandbox>()>& fork,
                          const std::function<void()>& settle = {});
/// fork_and_exec of Template::fork().
ForkedChild fork_and_exec(Template& t);
/// fork_and_exec, tried again after a failure (recorded in `failures`), `tries` times in all;
/// throws the last error when every try failed.
ForkedChild fork_and_exec_retry(const std::function<std::unique_ptr<Sandbox>()>& fork,
                                ForkFailures& failures, unsigned tries = 3,
                                const std::function<void()>& settle = {});

/// Samples of one way of forking: ForkTimings and the caller's own times, in ms.
struct ForkSeries {
  std::vector<double> freeze, to_vcpus_ready, create_vm, memory, devices, vcpus, state_ahead, state,
      activate, threads, start, other, prefault;
  std::vector<double> to_ready, agent_connect, identity, fork_call, exec, to_exec, teardown;
  std::vector<double> teardown_reaped;  ///< shutdown() until the reaper had finished it too
  std::vector<double> warm_exec;    ///< each child's warmed exec (ForkedChild::warm_exec_ms)
  std::vector<double> second_exec;  ///< each child's second exec (ForkedChild::second_exec_ms)
  /// ForkedChild::first_exec_guest_ms and warm_exec_guest_ms of each child.
  std::vector<double> first_exec_guest, warm_exec_guest;
  /// ForkedChild::first_exec_start_ms and warm_exec_start_ms of each child.
  std::vector<double> first_exec_start, warm_exec_start;
  /// KVM's counters over each child's first exec and over its warmed run, per exec (when this
  /// host's KVM has them: both empty otherwise).
  std::vector<KvmCounters> first_exec_kvm, warm_exec_kvm;
  std::vector<double> agent_accept, agent_attempts;  ///< ForkTimings' parts of agent_connect
  std::vector<double> prefaulted_mib;  ///< ForkTimings::prefaulted_bytes, in MiB
  /// to_ready - to_vcpus_ready - agent_connect - identity: the rest of making the Sandbox
  /// (its egress proxy with a fresh CA, the egress settings in the guest, its threads).
  std::vector<double> ready_other;
  unsigned prefaulted_vm = 0;          ///< forks whose VM had taken pages ahead
  std::vector<double> premapped_mib;   ///< ForkTimings::premapped_bytes, in MiB
  unsigned premapped_vm = 0;           ///< forks whose VM had them in its NPT/EPT too
  std::string premap_unavailable;      ///< the last ForkTimings::premap_unavailable seen
  /// Per fork: to_vcpus_ready + 1.2 x its warm exec, the bound issue 15 sets for to_exec.
  std::vector<double> exec_goal;
  unsigned pooled_vm = 0;  ///< forks whose VM came from the pool
  unsigned shell_vm = 0;   ///< forks whose VM was built on a shell from the shell pool
  unsigned carried_agent = 0;  ///< forks that took over the image's agent connection
  ForkFailures failures;   ///< forks that failed (retried; not samples)

  void add(const ForkedChild& c);
};

/// The latency row `key` (to_vcpus_ready, labelled `label`) and one indented row per build
/// phase, plus "other" (to_vcpus_ready minus the phases, freeze included when there is one).
void add_fork_rows(ReportSection& sec, const std::string& key, const std::string& label,
                   const ForkSeries& s);

/// Sandbox::shutdown() and the destructor; returns milliseconds (what the caller waits; the
/// rest of the teardown runs on the reaper: `reaped_ms`, when given, gets the time until
/// Sandbox::wait_for_teardowns() returned as well).
double destroy_timed(std::unique_ptr<Sandbox> box, double* reaped_ms = nullptr);

/// "open-file limit: soft S (raised from B), hard H" for a report's header.
std::string fd_limit_line(const FdLimits& l);

}  // namespace forkvm::bench
