// The same-run reference of `forkvm-bench fork`: the minimal sequence of KVM calls a fork of a
// snapshot needs, issued straight through the RAII layer (vmm/kvm/) with none of forkvm's
// machinery (no devices, no threads, no pool, no agent), each step timed.
//
// The order is the naive one, as a first VMM (or a zeroboot-style fork) writes it:
//   open /dev/kvm, KVM_CREATE_VM, KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2, mmap MAP_PRIVATE of the
//   snapshot's memory file, KVM_SET_USER_MEMORY_REGION, KVM_CREATE_VCPU, then per vCPU
//   SET_CPUID2, SET_SREGS, SET_REGS, SET_XSAVE, SET_LAPIC, SET_MSRS, SET_MP_STATE.
// "Naive" because the memory slot is registered after the irqchip exists: from then on every
// memslot change waits for an SRCU grace period (shared/KVM-LAB.md), which forkvm avoids by
// registering the slots first (vmm/vm.cpp build_machine()). The state set is the snapshot's real
// vCPU state (state.json "machine"), but only the listed parts: XCRS, DEBUGREGS, VCPU_EVENTS,
// TSC_KHZ, the irqchip/PIT contents and kvmclock are not restored, no device exists and no
// vCPU thread is started. It is a lower bound of the KVM work, not a usable VM.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "vmm/state/machine_state.hpp"

namespace forkvm::bench {

/// The steps, in the order they run.
enum class RawStep {
  kOpenKvm,
  kCreateVm,
  kCreateIrqchip,
  kCreatePit2,
  kMmap,
  kSetMemoryRegion,
  kCreateVcpu,
  kSetCpuid2,
  kSetSregs,
  kSetRegs,
  kSetXsave,
  kSetLapic,
  kSetMsrs,
  kSetMpState,
};
inline constexpr size_t kRawStepCount = 14;

/// The step's display name ("KVM_CREATE_VM", ...).
const char* raw_step_name(RawStep step);
/// The step's JSON key ("create_vm", ...).
const char* raw_step_key(RawStep step);
/// All step names in order, joined with ", " (for the output's note on the order).
std::string raw_step_order();
/// Whether the step needs the snapshot itself (mapping its memory file, setting its vCPU
/// state), so that no pool of image-independent VM shells can do it ahead: the memory slot can
/// (a shell registers it over reserved RAM that the image is later mapped over, as forkvm's
/// shells do), the VM, irqchip, PIT and vCPUs can. The sum of these steps is the least a fork
/// that takes a shell can cost.
bool raw_step_needs_image(RawStep step);

/// Where the time of one raw fork went (milliseconds); a step over several vCPUs or memory
/// regions is their sum.
struct RawForkTimings {
  std::array<double, kRawStepCount> step_ms{};
  double total_ms = 0;  ///< from before opening /dev/kvm to after the last setter
};

/// A snapshot opened once (untimed), forked raw any number of times.
class RawForkReference {
 public:
  /// Opens the snapshot in `dir` (state digest checked; the memory digest is not re-hashed:
  /// the benchmark's Template has verified it) and decodes its machine state. Throws
  /// SnapshotError.
  explicit RawForkReference(const std::string& dir);
  ~RawForkReference();
  RawForkReference(const RawForkReference&) = delete;
  RawForkReference& operator=(const RawForkReference&) = delete;

  /// The KVM objects and mappings of one raw child; destroying it is the teardown.
  class Child;
  struct ChildDeleter {
    void operator()(Child* c) const noexcept;
  };
  using ChildPtr = std::unique_ptr<Child, ChildDeleter>;

  /// Runs the sequence once, filling `timings`. Throws KvmError (naming the call that failed)
  /// or std::runtime_error when mmap fails.
  ChildPtr fork(RawForkTimings* timings) const;

  /// Destroys `child` (vCPU fds and their kvm_run mappings, guest memory, the VM fd, /dev/kvm)
  /// and returns how long that took in milliseconds.
  static double teardown(ChildPtr child);

  uint32_t vcpus() const noexcept { return static_cast<uint32_t>(machine_.vcpus.size()); }
  uint64_t memory_bytes() const noexcept { return memory_bytes_; }

 private:
  struct Files;
  std::unique_ptr<Files> files_;
  state::MachineState machine_;
  uint64_t memory_bytes_ = 0;
};

}  // namespace forkvm::bench
