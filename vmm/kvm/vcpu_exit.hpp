// Exits as values: VcpuFd::run() decodes struct kvm_run into one of these, so the dispatch
// that follows is a pure function testable with fabricated exits (no /dev/kvm).
#pragma once

#include <cstdint>
#include <span>
#include <variant>

namespace forkvm {

/// Port read: fill `data` (size * count bytes; `count` > 1 for rep ins).
struct IoIn {
  uint16_t port;
  uint8_t size;        ///< 1, 2 or 4
  uint32_t count;      ///< repetitions (rep insb/w/l)
  std::span<uint8_t> data;  ///< inside kvm_run; size * count bytes
};
/// Port write of `data` (size * count bytes; `count` > 1 for rep outs).
struct IoOut {
  uint16_t port;
  uint8_t size;
  uint32_t count;
  std::span<const uint8_t> data;
};
/// MMIO read: fill `data` (1-8 bytes).
struct MmioRead {
  uint64_t addr;
  std::span<uint8_t> data;
};
/// MMIO write of `data` (1-8 bytes).
struct MmioWrite {
  uint64_t addr;
  std::span<const uint8_t> data;
};
/// HLT reached userspace (only without an in-kernel irqchip).
struct Hlt {};
/// Triple fault or other shutdown condition (KVM_EXIT_SHUTDOWN).
struct Shutdown {};
/// KVM_EXIT_SYSTEM_EVENT: reset, shutdown or crash requested through a paravirt interface.
struct SystemEvent {
  uint32_t type;
};
/// KVM_RUN returned EINTR, or immediate_exit was set: the thread was kicked.
struct Interrupted {};
/// The hardware refused to enter the guest (KVM_EXIT_FAIL_ENTRY).
struct FailEntry {
  uint64_t reason;
};
/// KVM could not emulate something (KVM_EXIT_INTERNAL_ERROR).
struct InternalError {
  uint32_t suberror;
};
/// KVM_RUN itself failed with an errno other than EINTR/EAGAIN.
struct RunFailed {
  int err;
};
/// Any exit reason this VMM does not handle.
struct UnknownExit {
  uint32_t reason;
};

/// One decoded VM exit.
using VcpuExit = std::variant<IoIn, IoOut, MmioRead, MmioWrite, Hlt, Shutdown, SystemEvent,
                              Interrupted, FailEntry, InternalError, RunFailed, UnknownExit>;

}  // namespace forkvm
