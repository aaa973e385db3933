#include "vmm/kvm/vm_fd.hpp"

#include <sys/ioctl.h>

#include <cerrno>

#include "forkvm/errors.hpp"
#include "vmm/kvm/vcpu_fd.hpp"

namespace forkvm {

void VmFd::set_tss_addr(uint64_t addr) const {
  if (ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)) < 0) {
    throw KvmError("KVM_SET_TSS_ADDR", errno);
  }
}

void VmFd::get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) const {
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap.data();
  if (ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) < 0) throw KvmError("KVM_GET_DIRTY_LOG", errno);
}

void VmFd::set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host,
                                  uint32_t flags) const {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host);
  if (ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    throw KvmError("KVM_SET_USER_MEMORY_REGION", errno);
  }
}

void VmFd::create_irqchip() const {
  if (ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) throw KvmError("KVM_CREATE_IRQCHIP", errno);
}

void VmFd::create_pit2() const {
  kvm_pit_config config{};
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  if (ioctl(fd_.get(), KVM_CREATE_PIT2, &config) < 0) throw KvmError("KVM_CREATE_PIT2", errno);
}

bool VmFd::irq_line(uint32_t irq, bool level) const noexcept {
  kvm_irq_level l{};
  l.irq = irq;
  l.level = level ? 1 : 0;
  return ioctl(fd_.get(), KVM_IRQ_LINE, &l) == 0;
}

namespace {

kvm_ioeventfd make_ioeventfd(uint64_t gpa, uint32_t len, uint64_t datamatch, int fd,
                             uint32_t extra_flags) {
  kvm_ioeventfd io{};
  io.datamatch = datamatch;
  io.addr = gpa;
  io.len = len;
  io.fd = fd;
  io.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | extra_flags;  // MMIO (no FLAG_PIO)
  return io;
}

}  // namespace

void VmFd::register_ioeventfd(uint64_t gpa, uint32_t len, uint64_t datamatch, int fd) const {
  kvm_ioeventfd io = make_ioeventfd(gpa, len, datamatch, fd, 0);
  if (ioctl(fd_.get(), KVM_IOEVENTFD, &io) < 0) throw KvmError("KVM_IOEVENTFD", errno);
}

void VmFd::unregister_ioeventfd(uint64_t gpa, uint32_t len, uint64_t datamatch, int fd) const {
  kvm_ioeventfd io = make_ioeventfd(gpa, len, datamatch, fd, KVM_IOEVENTFD_FLAG_DEASSIGN);
  if (ioctl(fd_.get(), KVM_IOEVENTFD, &io) < 0) {
    throw KvmError("KVM_IOEVENTFD(DEASSIGN)", errno);
  }
}

void VmFd::register_irqfd(int fd, uint32_t gsi) const {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(fd);
  irqfd.gsi = gsi;
  if (ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) throw KvmError("KVM_IRQFD", errno);
}

int VmFd::check_extension(int cap) const noexcept {
  const int r = ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

uint32_t VmFd::xsave2_size() const noexcept {
  const int r = check_extension(KVM_CAP_XSAVE2);
  return r > 0 ? static_cast<uint32_t>(r) : 0;
}

kvm_irqchip VmFd::get_irqchip(uint32_t chip_id) const {
  kvm_irqchip chip{};
  chip.chip_id = chip_id;
  if (ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip) < 0) throw KvmError("KVM_GET_IRQCHIP", errno);
  return chip;
}

void VmFd::set_irqchip(const kvm_irqchip& chip) const {
  if (ioctl(fd_.get(), KVM_SET_IRQCHIP, &chip) < 0) throw KvmError("KVM_SET_IRQCHIP", errno);
}

kvm_pit_state2 VmFd::get_pit2() const {
  kvm_pit_state2 pit{};
  if (ioctl(fd_.get(), KVM_GET_PIT2, &pit) < 0) throw KvmError("KVM_GET_PIT2", errno);
  return pit;
}

void VmFd::set_pit2(const kvm_pit_state2& pit) const {
  if (ioctl(fd_.get(), KVM_SET_PIT2, &pit) < 0) throw KvmError("KVM_SET_PIT2", errno);
}

kvm_clock_data VmFd::get_clock() const {
  kvm_clock_data clock{};
  if (ioctl(fd_.get(), KVM_GET_CLOCK, &clock) < 0) throw KvmError("KVM_GET_CLOCK", errno);
  return clock;
}

void VmFd::set_clock(const kvm_clock_data& clock) const {
  if (ioctl(fd_.get(), KVM_SET_CLOCK, &clock) < 0) throw KvmError("KVM_SET_CLOCK", errno);
}

VcpuFd VmFd::create_vcpu(uint32_t id) const {
  const int fd = ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
  if (fd < 0) throw KvmError("KVM_CREATE_VCPU", errno);
  return VcpuFd(Fd(fd), vcpu_mmap_size_);
}

}  // namespace forkvm
