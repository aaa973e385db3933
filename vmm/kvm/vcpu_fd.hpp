// VcpuFd: one KVM vCPU and its mmap'd struct kvm_run. vCPU ioctls only; one method per ioctl.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/fd.hpp"
#include "vmm/kvm/kvm_stats.hpp"
#include "vmm/kvm/vcpu_exit.hpp"

namespace forkvm {

/// A vCPU file descriptor with its shared kvm_run page.
class VcpuFd {
 public:
  /// Takes ownership of `fd` and maps `mmap_size` bytes of kvm_run. Throws KvmError.
  VcpuFd(Fd fd, size_t mmap_size);
  VcpuFd(VcpuFd&& other) noexcept;
  VcpuFd& operator=(VcpuFd&&) = delete;
  VcpuFd(const VcpuFd&) = delete;
  VcpuFd& operator=(const VcpuFd&) = delete;
  ~VcpuFd();

  kvm_regs get_regs() const;                               ///< KVM_GET_REGS
  /// KVM_TRANSLATE: the guest-physical address of guest-virtual `gva` under the vCPU's current
  /// paging, or nullopt when it is not mapped (or KVM refuses). Only while the vCPU is out of
  /// KVM_RUN.
  std::optional<uint64_t> translate(uint64_t gva) const noexcept;
  void set_regs(const kvm_regs& regs) const;               ///< KVM_SET_REGS
  kvm_sregs get_sregs() const;                             ///< KVM_GET_SREGS
  void set_sregs(const kvm_sregs& sregs) const;            ///< KVM_SET_SREGS
  kvm_fpu get_fpu() const;                                 ///< KVM_GET_FPU
  void set_fpu(const kvm_fpu& fpu) const;                  ///< KVM_SET_FPU
  kvm_lapic_state get_lapic() const;                       ///< KVM_GET_LAPIC
  void set_lapic(const kvm_lapic_state& lapic) const;      ///< KVM_SET_LAPIC
  kvm_mp_state get_mp_state() const;                       ///< KVM_GET_MP_STATE
  void set_mp_state(const kvm_mp_state& state) const;      ///< KVM_SET_MP_STATE
  /// KVM_SET_CPUID2 with the given leaves.
  void set_cpuid2(const std::vector<kvm_cpuid_entry2>& entries) const;
  /// KVM_SET_MSRS; throws unless every entry was accepted.
  void set_msrs(const std::vector<kvm_msr_entry>& entries) const;
  /// KVM_GET_MSRS for the indices in `entries` (data filled in); returns how many were read.
  size_t get_msrs(std::vector<kvm_msr_entry>& entries) const;
  /// KVM_GET_TSC_KHZ: the guest TSC frequency, 0 when unknown.
  uint32_t get_tsc_khz() const noexcept;
  /// KVM_SET_TSC_KHZ (needs KVM_CAP_TSC_CONTROL unless `khz` is the host's own frequency).
  void set_tsc_khz(uint32_t khz) const;

  /// KVM_GET_CPUID2: the leaves last set with KVM_SET_CPUID2 (empty before any).
  std::vector<kvm_cpuid_entry2> get_cpuid2() const;
  /// The XSAVE area: KVM_GET_XSAVE2 with `xsave2_size` bytes (VmFd::xsave2_size()) when that is
  /// non-zero, else KVM_GET_XSAVE (4096 bytes).
  std::vector<uint8_t> get_xsave(uint32_t xsave2_size) const;
  /// KVM_SET_XSAVE. The kernel reads max(4096, xsave2_size) bytes, so `area` is copied into a
  /// zero-padded buffer of that size; an `area` larger than that throws KvmError (E2BIG).
  void set_xsave(std::span<const uint8_t> area, uint32_t xsave2_size) const;
  kvm_xcrs get_xcrs() const;                               ///< KVM_GET_XCRS
  void set_xcrs(const kvm_xcrs& xcrs) const;               ///< KVM_SET_XCRS
  kvm_debugregs get_debugregs() const;                     ///< KVM_GET_DEBUGREGS
  void set_debugregs(const kvm_debugregs& regs) const;     ///< KVM_SET_DEBUGREGS
  /// KVM_PRE_FAULT_MEMORY (Linux 6.10+, KVM_CAP_PRE_FAULT_MEMORY): maps the page-aligned
  /// guest-physical range [gpa, gpa + size) into KVM's stage-2 tables as if this vCPU had read
  /// it, faulting host pages in as needed (without breaking copy-on-write), so the guest's
  /// first touch of those pages takes no nested page fault. Needs the vCPU's CPUID and special
  /// registers set (they pick the MMU). Retries the kernel's partial progress and EINTR; throws
  /// KvmError otherwise (EOPNOTSUPP: shadow paging, no TDP; ENOENT: a gpa outside every slot).
  void pre_fault_memory(uint64_t gpa, uint64_t size) const;
  /// KVM_GET_STATS_FD (Linux 5.14+): this vCPU's statistics (exits, page faults). The ioctl
  /// waits for a KVM_RUN in progress to return, so open it before the vCPU first runs; reading
  /// the values later takes no lock. nullopt on a kernel without it or with an unusable layout;
  /// KvmError when the host runs short of descriptors or memory for one.
  std::optional<KvmStatsFd> open_stats() const;
  kvm_vcpu_events get_vcpu_events() const;                 ///< KVM_GET_VCPU_EVENTS
  void set_vcpu_events(const kvm_vcpu_events& ev) const;   ///< KVM_SET_VCPU_EVENTS

  /// KVM_RUN, decoded. Never throws: failures come back as RunFailed. The spans inside the
  /// returned exit point into kvm_run and stay valid until the next run().
  VcpuExit run() noexcept;
  /// KVM_RUN with immediate_exit set: the kernel finishes the I/O or MMIO instruction of the
  /// last exit (moves RIP past an OUT, loads the data of an IN) and returns EINTR without
  /// running any guest instruction. The guest state is only consistent after this (api.rst,
  /// KVM_RUN), so call it before reading state for a snapshot. Leaves immediate_exit clear.
  /// Returns false (never throws) if KVM_RUN failed with anything but EINTR.
  bool complete_pending_io() noexcept;
  /// Sets kvm_run->immediate_exit, which makes the next (or a pending) KVM_RUN return EINTR
  /// at once; the kick protocol in vcpu_thread.cpp explains the ordering.
  void set_immediate_exit(bool on) noexcept;

  /// The raw descriptor (diagnostics only).
  int fd() const noexcept { return fd_.get(); }

 private:
  VcpuExit decode_io() noexcept;

  Fd fd_;
  kvm_run* run_ = nullptr;
  size_t mmap_size_ = 0;
};

}  // namespace forkvm
