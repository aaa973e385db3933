// ShellPool: the process-wide pool of VM shells behind include/forkvm/shell_pool.hpp. A shell
// is a Vm::Impl built as far as it can be without an image (Vm::Impl::build_shell_machine()
// plus the vCPUs); Vm::prepare (vm_snapshot.cpp) takes one, maps the image over its reserved
// RAM and attaches the virtio devices. One background thread keeps every warm shape at
// ShellPoolOptions::per_shape shells.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "forkvm/shell_pool.hpp"
#include "vmm/kvm_host.hpp"
#include "vmm/vm_impl.hpp"

namespace forkvm {

/// What a shell depends on: the machine's vCPU count and RAM size, and the KVM device.
struct ShellShape {
  /// The device's KvmHost, got by the caller before the pool is first used, so that the
  /// process-wide KvmHost table outlives the pool at exit and the refill thread never opens a
  /// device itself.
  std::shared_ptr<const KvmHost> kvm;
  std::string kvm_device;
  uint32_t vcpus = 0;
  uint64_t memory_mib = 0;

  bool same_as(const ShellShape& o) const {
    return kvm_device == o.kvm_device && vcpus == o.vcpus && memory_mib == o.memory_mib;
  }
};

/// Builds a shell of `shape` now: RAM reserved (GuestMemory::reserve), KVM VM, TSS, memory
/// slots, irqchip, PIT, legacy devices, vCPUs created (not started); phases recorded in
/// Vm::Impl::phases. Throws KvmError, GuestMemoryError, ConfigError.
std::unique_ptr<Vm::Impl> build_shell(const ShellShape& shape);

class ShellPool {
 public:
  /// The process's pool (made on first use; its thread starts when a shape is first wanted).
  static ShellPool& instance();
  ~ShellPool();

  /// A ready, live shell of `shape`, or nullptr (counted as a miss: build one inline). Either
  /// way the shape becomes warm and the refill thread is woken. A shell whose VM no longer
  /// answers KVM is destroyed, never returned.
  std::unique_ptr<Vm::Impl> take(const ShellShape& shape);
  /// Keeps `shape` warm from now on (a VM of it will probably be made from an image soon).
  void want(const ShellShape& shape);
  void configure(const ShellPoolOptions& options);
  ShellPoolStats stats() const;
  bool wait_full(std::chrono::milliseconds timeout);
  /// Test hook: turns the VM descriptor of every ready shell of `shape` into /dev/null, as VMs
  /// that died in the pool. Returns how many.
  size_t break_shells_for_test(const ShellShape& shape);

 private:
  using Clock = std::chrono::steady_clock;
  using Shell = std::unique_ptr<Vm::Impl>;
  struct Warm {
    ShellShape shape;
    std::deque<Shell> ready;
    Clock::time_point last_used;
  };

  ShellPool() = default;
  /// The warm entry of `shape`, made (evicting the least recently used beyond max_shapes into
  /// `dropped`) when missing; marks it used. Needs mu_.
  Warm& warm_locked(const ShellShape& shape, std::vector<Shell>& dropped);
  /// Drops shells and shapes beyond the options into `dropped`. Needs mu_.
  void trim_locked(std::vector<Shell>& dropped);
  /// Starts the refill thread once. Needs mu_.
  void start_locked();
  /// A warm shape short of shells, or nullptr. Needs mu_.
  Warm* short_shape_locked();
  bool full_locked() const;
  void refill_loop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  ShellPoolOptions options_;
  std::list<Warm> warm_;  // a list: Warm holds a deque, whose move may throw
  std::thread thread_;
  bool stopping_ = false;
  /// The counters and last error (stats() fills in the rest).
  ShellPoolStats counts_;
  std::deque<std::chrono::nanoseconds> build_times_;  // the last 64
};

}  // namespace forkvm
