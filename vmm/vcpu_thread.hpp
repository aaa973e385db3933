// VcpuThread: one host thread per vCPU, a small state machine (Running / Paused / Finished)
// driven by requests from other threads. A request that must take effect while the thread is
// inside KVM_RUN kicks it out with kvm_run->immediate_exit plus a no-op signal (the shape of
// Firecracker's vstate/vcpu.rs); the signal handler does nothing, so it takes no locks.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "devices/bus.hpp"
#include "forkvm/host_threads.hpp"
#include "vmm/exit_dispatch.hpp"
#include "vmm/kvm/vcpu_fd.hpp"
#include "vmm/vcpu_report.hpp"

namespace forkvm {

/// Runs one vCPU on its own thread.
class VcpuThread {
 public:
  /// Called once, on the vCPU thread, when the vCPU stops by itself (guest reset, halt, or a
  /// fatal exit). `detail` describes the exit. Must not call back into this VcpuThread.
  using StopObserver = std::function<void(uint32_t index, ExitAction action, const std::string& detail)>;

  /// Takes the vCPU (already configured for boot) and the buses it dispatches to; the buses
  /// must outlive this object.
  VcpuThread(uint32_t index, VcpuFd vcpu, const Bus& pio, const Bus& mmio, StopObserver observer);
  /// Stops and joins the thread.
  ~VcpuThread();
  VcpuThread(const VcpuThread&) = delete;
  VcpuThread& operator=(const VcpuThread&) = delete;

  /// Spawns the thread, paused unless `running`. The first start in the process installs the
  /// kick signal's handler (forkvm/host_threads.hpp); throws SignalConflictError when the
  /// program has its own disposition on that signal. The thread filters itself
  /// (vcpu_filter.hpp) before it first runs the guest.
  void start(bool running);
  /// Lets a paused vCPU run.
  void resume();
  /// How long pause() waits by default: far beyond any exit a device handles in time (a
  /// kicked vCPU leaves KVM_RUN at once), short enough that one stuck vCPU cannot hang a
  /// snapshot, fork or progress report for good.
  static constexpr std::chrono::milliseconds kPauseTimeout{10000};
  /// Stops the vCPU at the next exit (kicking it out of KVM_RUN) and waits until it is parked
  /// outside KVM_RUN, or has finished, for at most `timeout`. False when it did not park in
  /// time: its thread is inside a device call that has not returned. The request stays (it
  /// parks when the call returns); resume() withdraws it and stop() still ends the thread once
  /// the call returns.
  bool pause(std::chrono::milliseconds timeout = kPauseTimeout);
  /// Asks the thread to finish and kicks it, without waiting. Safe from any thread, including
  /// the vCPU thread itself (a device callback that decides the VM must stop).
  void request_stop();
  /// Asks the thread to finish, kicks it, and joins it. Idempotent. Not from the vCPU thread.
  void stop();
  /// True once the thread has left its loop (by stop() or by a guest-initiated stop).
  bool finished() const;
  /// True when called on this vCPU's own thread (e.g. from a device callback).
  bool is_current_thread() const noexcept { return thread_.get_id() == std::this_thread::get_id(); }
  /// The vCPU (for state get/set while paused).
  VcpuFd& vcpu() noexcept { return vcpu_; }
  /// Number of KVM_RUN calls so far (approximate; for diagnostics).
  uint64_t run_count() const noexcept { return history_.counts().runs; }
  /// Registers, pending events, exit counts and the last exits, for error messages. Only while
  /// the vCPU is parked (pause()) or finished; a register KVM refuses to read is left out.
  VcpuSample sample() const;
  /// The guest-physical address of guest-virtual `gva` (VcpuFd::translate). Only while the vCPU
  /// is parked (pause()) or finished.
  std::optional<uint64_t> translate(uint64_t gva) const noexcept { return vcpu_.translate(gva); }

 private:
  enum class Request { kRun, kPause, kStop };
  void loop();
  /// Finishes the instruction of the last I/O or MMIO exit without running guest code (before
  /// parking). False when that ended in an exit that stops the vCPU (already reported).
  bool finish_pending_instruction();
  /// dispatch(), with a device's exception turned into kDeviceError (its text kept in
  /// device_failure_): nothing a device throws reaches std::terminate.
  ExitAction handle(const VcpuExit& exit) noexcept;
  void note_device_failure(const VcpuExit& exit, const char* what) noexcept;
  /// Tells the observer why the vCPU stops, with its registers for a triple fault or fatal exit.
  /// An observer that throws (out of memory) is not told.
  void report_stop(const VcpuExit& exit, ExitAction action) noexcept;
  void kick();

  uint32_t index_;
  VcpuFd vcpu_;
  const Bus& pio_;
  const Bus& mmio_;
  StopObserver observer_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Request request_ = Request::kPause;
  bool parked_ = false;
  bool finished_ = false;
  ExitHistory history_;
  /// What the device threw, for a kDeviceError stop (vCPU thread only).
  std::string device_failure_;
  /// The thread's kernel id once it runs (0 before), for diagnostics.
  std::atomic<int> tid_{0};
  std::thread thread_;
};

/// Installs the kick signal's no-op handler (without SA_RESTART) once per process; VcpuThread's
/// start() calls it. Throws SignalConflictError, changing nothing, when the program has a
/// handler (or SIG_IGN) on vcpu_kick_signal(); a later call tries again.
void install_kick_handler();

}  // namespace forkvm
