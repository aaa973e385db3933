// VmFd: one KVM virtual machine. VM-level ioctls only; one method per ioctl.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/fd.hpp"

namespace forkvm {

class VcpuFd;

/// A KVM VM file descriptor (from KVM_CREATE_VM).
class VmFd {
 public:
  VmFd(Fd fd, size_t vcpu_mmap_size) : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}

  /// KVM_SET_TSS_ADDR: three pages KVM uses for real-mode emulation on Intel.
  void set_tss_addr(uint64_t addr) const;
  /// KVM_SET_USER_MEMORY_REGION: maps `size` bytes at host `host` to guest `gpa` in `slot`.
  void set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host,
                              uint32_t flags = 0) const;
  /// KVM_GET_DIRTY_LOG: the pages of `slot` (registered with KVM_MEM_LOG_DIRTY_PAGES) the guest
  /// or KVM wrote since the slot was registered or last asked, one bit per page into `bitmap`
  /// (at least one bit per page of the slot, rounded up to 64), which KVM then clears and
  /// write-protects again. Throws KvmError.
  void get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) const;
  /// KVM_CREATE_IRQCHIP: in-kernel PIC pair, IOAPIC and per-vCPU LAPICs. Must precede vCPUs.
  void create_irqchip() const;
  /// KVM_CREATE_PIT2 with KVM_PIT_SPEAKER_DUMMY so port 0x61 never exits to userspace.
  void create_pit2() const;
  /// KVM_IRQ_LINE: drives GSI `irq` to `level` on the in-kernel irqchip. Returns false (rather
  /// than throwing) on failure: it runs on the device hot path.
  bool irq_line(uint32_t irq, bool level) const noexcept;
  /// KVM_IOEVENTFD with KVM_IOEVENTFD_FLAG_DATAMATCH: a guest MMIO write of exactly `len`
  /// bytes (1, 2, 4 or 8) at `gpa` whose value equals `datamatch` signals eventfd `fd` inside
  /// KVM instead of exiting to userspace. Writes with another value or width still exit.
  /// The eventfd stays owned by the caller. Throws KvmError.
  void register_ioeventfd(uint64_t gpa, uint32_t len, uint64_t datamatch, int fd) const;
  /// KVM_IOEVENTFD with KVM_IOEVENTFD_FLAG_DEASSIGN: removes a registration made with exactly
  /// the same arguments. Throws KvmError (ENOENT when there is none).
  void unregister_ioeventfd(uint64_t gpa, uint32_t len, uint64_t datamatch, int fd) const;
  /// KVM_IRQFD: a write to eventfd `fd` raises GSI `gsi` on the in-kernel irqchip (an edge:
  /// KVM asserts then deasserts the line). Needs the irqchip. Closing the eventfd detaches it.
  /// Throws KvmError.
  void register_irqfd(int fd, uint32_t gsi) const;
  /// KVM_CHECK_EXTENSION on the VM fd (some answers, e.g. KVM_CAP_XSAVE2, are per VM); 0 when
  /// unsupported.
  int check_extension(int cap) const noexcept;
  /// Bytes KVM_GET_XSAVE2/KVM_SET_XSAVE transfer (KVM_CAP_XSAVE2), or 0 without XSAVE2.
  uint32_t xsave2_size() const noexcept;
  /// KVM_GET_IRQCHIP for `chip_id` (KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE or _IOAPIC).
  kvm_irqchip get_irqchip(uint32_t chip_id) const;
  /// KVM_SET_IRQCHIP; `chip.chip_id` says which chip.
  void set_irqchip(const kvm_irqchip& chip) const;
  kvm_pit_state2 get_pit2() const;                 ///< KVM_GET_PIT2
  void set_pit2(const kvm_pit_state2& pit) const;  ///< KVM_SET_PIT2
  kvm_clock_data get_clock() const;                ///< KVM_GET_CLOCK (kvmclock)
  void set_clock(const kvm_clock_data& clock) const;  ///< KVM_SET_CLOCK

  /// KVM_CREATE_VCPU with the given vCPU id, and maps its kvm_run.
  VcpuFd create_vcpu(uint32_t id) const;

  /// The raw descriptor (diagnostics only).
  int fd() const noexcept { return fd_.get(); }

 private:
  Fd fd_;
  size_t vcpu_mmap_size_;
};

}  // namespace forkvm
