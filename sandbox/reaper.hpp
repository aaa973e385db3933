// The process's reaper: one thread that finishes tearing down shut-down sandboxes (closing the
// KVM VM and its vCPU and device descriptors, unmapping guest memory, removing the private temp
// dir), the slow part of a teardown, so that Sandbox::shutdown() and the destructor do not wait
// for it. Bounded: at most kMaxPending teardowns wait; a shutdown beyond that waits for room
// (back-pressure), so a burst cannot pile up VMs, memory and descriptors without limit. At
// process exit (std::atexit) the queue is drained before the thread ends; a teardown handed
// over after that runs on the caller's thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "forkvm/vm.hpp"

namespace forkvm::sandbox {

/// What is left of a shut-down sandbox: the rest of its shutdown (joining its threads; it holds
/// what it needs alive), its stopped VM and its temp dir ("" for none), torn down in that order.
struct Remains {
  std::unique_ptr<Vm> vm;
  std::string temp_dir;
  std::function<void()> finish;  ///< runs first; a throw is caught and logged
};

/// See the file comment. Thread-safe.
class Reaper {
 public:
  /// Teardowns queued at most; the next submit() waits for room.
  static constexpr std::size_t kMaxPending = 64;

  /// The process's reaper (started on first use).
  static Reaper& instance();

  /// Queues the teardown of `remains` (the VM destroyed, then the directory removed); waits
  /// while kMaxPending are queued. Runs it on the caller's thread when the reaper has no
  /// thread (it could not be started, or the process is exiting). Never throws.
  void submit(Remains remains) noexcept;
  /// Waits until every teardown queued before the call has finished.
  void drain();
  /// Teardowns queued or running.
  std::size_t pending() const;
  /// Teardowns finished since the process started.
  uint64_t finished() const;
  /// The teardown itself, on the caller's thread: the VM destroyed, then the directory removed.
  static void tear_down(Remains& remains) noexcept;

  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

 private:
  Reaper();
  void run();
  void stop() noexcept;  // at exit: drain, then end the thread

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Remains> queue_;  // guarded by mu_
  bool busy_ = false;          // the thread is tearing one down (guarded by mu_)
  bool stopping_ = false;      // guarded by mu_
  uint64_t submitted_ = 0;     // guarded by mu_
  uint64_t finished_ = 0;      // guarded by mu_
  std::thread thread_;
};

}  // namespace forkvm::sandbox
