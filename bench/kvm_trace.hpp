// KvmTrace: KVM's own trace events (tracefs, as root) recorded while forkvm-bench fork-stress
// runs, so that a child that dies can be explained by what KVM did to its vCPU just before
// (exits, injected exceptions and interrupts, page faults). On AMD, KVM resets a vCPU at a
// triple fault, so these events are the only record of where it faulted.
#pragma once

#include <memory>
#include <string>

namespace forkvm::bench {

class KvmTrace {
 public:
  /// Mounts tracefs if needed, sizes the buffer and enables the kvm events. nullptr (with
  /// `why_not` set) when that is not possible here (not root, no tracefs, no kvm events).
  static std::unique_ptr<KvmTrace> start(std::string& why_not);
  /// Stops tracing, disables the events.
  ~KvmTrace();
  KvmTrace(const KvmTrace&) = delete;
  KvmTrace& operator=(const KvmTrace&) = delete;

  /// Stops recording, returns the last `max_lines` events of host thread `tid` (all threads'
  /// when tid is 0), clears the buffer and records again.
  std::string excerpt(int tid, size_t max_lines);

 private:
  explicit KvmTrace(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace forkvm::bench
