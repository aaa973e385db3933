#include "vmm/kvm/vcpu_fd.hpp"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>

#include "forkvm/errors.hpp"
#include "vmm/kvm/kvm_abi.hpp"

namespace forkvm {
namespace {

template <typename T>
T get(int fd, unsigned long req, const char* name) {
  T value{};
  if (ioctl(fd, req, &value) < 0) throw KvmError(name, errno);
  return value;
}

template <typename T>
void set(int fd, unsigned long req, const T& value, const char* name) {
  if (ioctl(fd, req, &value) < 0) throw KvmError(name, errno);
}

/// A C-layout header (kvm_abi.hpp) followed by `n` entries, 8-byte aligned and zeroed.
template <typename Header, typename Entry>
class FlexBuffer {
 public:
  explicit FlexBuffer(size_t n)
      : buf_(std::make_unique<uint64_t[]>((sizeof(Header) + n * sizeof(Entry) + 7) / 8)) {}
  Header* header() noexcept { return reinterpret_cast<Header*>(buf_.get()); }
  Entry* entries() noexcept {
    return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(buf_.get()) + sizeof(Header));
  }

 private:
  std::unique_ptr<uint64_t[]> buf_;
};

}  // namespace

VcpuFd::VcpuFd(Fd fd, size_t mmap_size) : fd_(std::move(fd)), mmap_size_(mmap_size) {
  void* p = mmap(nullptr, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (p == MAP_FAILED) throw KvmError("mmap(kvm_run)", errno);
  run_ = static_cast<kvm_run*>(p);
}

VcpuFd::VcpuFd(VcpuFd&& other) noexcept
    : fd_(std::move(other.fd_)),
      run_(std::exchange(other.run_, nullptr)),
      mmap_size_(std::exchange(other.mmap_size_, 0)) {}

VcpuFd::~VcpuFd() {
  if (run_ != nullptr) munmap(run_, mmap_size_);
}

kvm_regs VcpuFd::get_regs() const { return get<kvm_regs>(fd_.get(), KVM_GET_REGS, "KVM_GET_REGS"); }
std::optional<uint64_t> VcpuFd::translate(uint64_t gva) const noexcept {
  kvm_translation t{};
  t.linear_address = gva;
  if (ioctl(fd_.get(), KVM_TRANSLATE, &t) != 0 || t.valid == 0) return std::nullopt;
  return t.physical_address;
}
void VcpuFd::set_regs(const kvm_regs& r) const { set(fd_.get(), KVM_SET_REGS, r, "KVM_SET_REGS"); }
kvm_sregs VcpuFd::get_sregs() const {
  return get<kvm_sregs>(fd_.get(), KVM_GET_SREGS, "KVM_GET_SREGS");
}
void VcpuFd::set_sregs(const kvm_sregs& s) const {
  set(fd_.get(), KVM_SET_SREGS, s, "KVM_SET_SREGS");
}
kvm_fpu VcpuFd::get_fpu() const { return get<kvm_fpu>(fd_.get(), KVM_GET_FPU, "KVM_GET_FPU"); }
void VcpuFd::set_fpu(const kvm_fpu& f) const { set(fd_.get(), KVM_SET_FPU, f, "KVM_SET_FPU"); }
kvm_lapic_state VcpuFd::get_lapic() const {
  return get<kvm_lapic_state>(fd_.get(), KVM_GET_LAPIC, "KVM_GET_LAPIC");
}
void VcpuFd::set_lapic(const kvm_lapic_state& l) const {
  set(fd_.get(), KVM_SET_LAPIC, l, "KVM_SET_LAPIC");
}
kvm_mp_state VcpuFd::get_mp_state() const {
  return get<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE");
}
void VcpuFd::set_mp_state(const kvm_mp_state& m) const {
  set(fd_.get(), KVM_SET_MP_STATE, m, "KVM_SET_MP_STATE");
}

void VcpuFd::set_cpuid2(const std::vector<kvm_cpuid_entry2>& entries) const {
  FlexBuffer<kvm_abi::Cpuid2Header, kvm_cpuid_entry2> buf(entries.size());
  buf.header()->nent = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buf.entries());
  if (ioctl(fd_.get(), kvm_abi::kSetCpuid2, buf.header()) < 0) {
    throw KvmError("KVM_SET_CPUID2", errno);
  }
}

void VcpuFd::set_msrs(const std::vector<kvm_msr_entry>& entries) const {
  FlexBuffer<kvm_abi::MsrsHeader, kvm_msr_entry> buf(entries.size());
  buf.header()->nmsrs = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buf.entries());
  // KVM_SET_MSRS returns how many entries it set; it stops at the first one it rejects.
  const int n = ioctl(fd_.get(), kvm_abi::kSetMsrs, buf.header());
  if (n < 0) throw KvmError("KVM_SET_MSRS", errno);
  if (static_cast<size_t>(n) != entries.size()) {
    throw KvmError("KVM_SET_MSRS rejected MSR " + std::to_string(entries[static_cast<size_t>(n)].index),
                   EINVAL);
  }
}

size_t VcpuFd::get_msrs(std::vector<kvm_msr_entry>& entries) const {
  FlexBuffer<kvm_abi::MsrsHeader, kvm_msr_entry> buf(entries.size());
  buf.header()->nmsrs = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buf.entries());
  const int n = ioctl(fd_.get(), kvm_abi::kGetMsrs, buf.header());
  if (n < 0) throw KvmError("KVM_GET_MSRS", errno);
  std::copy(buf.entries(), buf.entries() + entries.size(), entries.begin());
  return static_cast<size_t>(n);
}

uint32_t VcpuFd::get_tsc_khz() const noexcept {
  const int r = ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
  return r > 0 ? static_cast<uint32_t>(r) : 0;
}

void VcpuFd::set_tsc_khz(uint32_t khz) const {
  if (ioctl(fd_.get(), KVM_SET_TSC_KHZ, static_cast<unsigned long>(khz)) < 0) {
    throw KvmError("KVM_SET_TSC_KHZ", errno);
  }
}

void VcpuFd::pre_fault_memory(uint64_t gpa, uint64_t size) const {
  kvm_abi::PreFaultMemory range{};
  range.gpa = gpa;
  range.size = size;
  // The kernel returns 0 after mapping part of the range (gpa and size updated), so each
  // success makes progress. EINTR (a signal came first) and EAGAIN go on from where it stopped,
  // a bounded number of times in a row so a signal storm cannot keep this thread here.
  constexpr int kMaxRetries = 1000;
  int retries = 0;
  while (range.size > 0) {
    if (ioctl(fd_.get(), kvm_abi::kPreFaultMemory, &range) == 0) {
      retries = 0;
      continue;
    }
    const int err = errno;
    if ((err == EINTR || err == EAGAIN) && ++retries < kMaxRetries) continue;
    throw KvmError("KVM_PRE_FAULT_MEMORY", err);
  }
}

std::optional<KvmStatsFd> VcpuFd::open_stats() const {
  const int fd = ioctl(fd_.get(), KVM_GET_STATS_FD, 0);
  if (fd < 0) {
    const int err = errno;
    // The host running short (descriptors, memory) is a failure, so that no VM quietly goes
    // without its counters and every VM of one kernel holds the same descriptors. Any other
    // errno (ENOTTY/EINVAL before 5.14, or a KVM variant without it) means no statistics.
    if (err == EMFILE || err == ENFILE || err == ENOMEM) throw KvmError("KVM_GET_STATS_FD", err);
    return std::nullopt;
  }
  return KvmStatsFd::adopt(Fd(fd));
}

std::vector<kvm_cpuid_entry2> VcpuFd::get_cpuid2() const {
  // KVM_MAX_CPUID_ENTRIES is 256; the kernel fails with E2BIG if nent is below what was set.
  constexpr uint32_t kMax = 256;
  FlexBuffer<kvm_abi::Cpuid2Header, kvm_cpuid_entry2> buf(kMax);
  buf.header()->nent = kMax;
  if (ioctl(fd_.get(), kvm_abi::kGetCpuid2, buf.header()) < 0) {
    throw KvmError("KVM_GET_CPUID2", errno);
  }
  const uint32_t n = std::min(buf.header()->nent, kMax);
  return {buf.entries(), buf.entries() + n};
}

std::vector<uint8_t> VcpuFd::get_xsave(uint32_t xsave2_size) const {
  const size_t size = std::max<size_t>(sizeof(kvm_abi::XsaveHeader), xsave2_size);
  std::vector<uint8_t> area(size);
  const unsigned long req = xsave2_size != 0 ? kvm_abi::kGetXsave2 : kvm_abi::kGetXsave;
  if (ioctl(fd_.get(), req, area.data()) < 0) {
    throw KvmError(xsave2_size != 0 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE", errno);
  }
  return area;
}

void VcpuFd::set_xsave(std::span<const uint8_t> area, uint32_t xsave2_size) const {
  const size_t size = std::max<size_t>(sizeof(kvm_abi::XsaveHeader), xsave2_size);
  if (area.size() > size) throw KvmError("KVM_SET_XSAVE (area larger than the kernel's)", E2BIG);
  std::vector<uint8_t> buf(size, 0);
  std::copy(area.begin(), area.end(), buf.begin());
  if (ioctl(fd_.get(), kvm_abi::kSetXsave, buf.data()) < 0) throw KvmError("KVM_SET_XSAVE", errno);
}

kvm_xcrs VcpuFd::get_xcrs() const { return get<kvm_xcrs>(fd_.get(), KVM_GET_XCRS, "KVM_GET_XCRS"); }
void VcpuFd::set_xcrs(const kvm_xcrs& x) const { set(fd_.get(), KVM_SET_XCRS, x, "KVM_SET_XCRS"); }
kvm_debugregs VcpuFd::get_debugregs() const {
  return get<kvm_debugregs>(fd_.get(), KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS");
}
void VcpuFd::set_debugregs(const kvm_debugregs& d) const {
  set(fd_.get(), KVM_SET_DEBUGREGS, d, "KVM_SET_DEBUGREGS");
}
kvm_vcpu_events VcpuFd::get_vcpu_events() const {
  return get<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
void VcpuFd::set_vcpu_events(const kvm_vcpu_events& e) const {
  set(fd_.get(), KVM_SET_VCPU_EVENTS, e, "KVM_SET_VCPU_EVENTS");
}

void VcpuFd::set_immediate_exit(bool on) noexcept {
  // kvm_run is shared with the kernel; a volatile store keeps the compiler from caching or
  // eliding it. The kernel reads it on entry to KVM_RUN.
  *static_cast<volatile uint8_t*>(&run_->immediate_exit) = on ? 1 : 0;
}

bool VcpuFd::complete_pending_io() noexcept {
  set_immediate_exit(true);
  const int r = ioctl(fd_.get(), KVM_RUN, 0);
  const int err = errno;
  set_immediate_exit(false);
  return r < 0 && (err == EINTR || err == EAGAIN);
}

VcpuExit VcpuFd::run() noexcept {
  if (ioctl(fd_.get(), KVM_RUN, 0) < 0) {
    const int err = errno;
    if (err == EINTR || err == EAGAIN) return Interrupted{};
    return RunFailed{err};
  }
  switch (run_->exit_reason) {
    case KVM_EXIT_IO:
      return decode_io();
    case KVM_EXIT_MMIO: {
      // Kernel-provided, but checked anyway: data is an 8-byte array.
      const uint32_t len = std::min<uint32_t>(run_->mmio.len, sizeof run_->mmio.data);
      if (run_->mmio.is_write) {
        return MmioWrite{run_->mmio.phys_addr, std::span<const uint8_t>(run_->mmio.data, len)};
      }
      return MmioRead{run_->mmio.phys_addr, std::span<uint8_t>(run_->mmio.data, len)};
    }
    case KVM_EXIT_HLT:
      return Hlt{};
    case KVM_EXIT_SHUTDOWN:
      return Shutdown{};
    case KVM_EXIT_SYSTEM_EVENT:
      return SystemEvent{run_->system_event.type};
    case KVM_EXIT_INTR:
      return Interrupted{};
    case KVM_EXIT_FAIL_ENTRY:
      return FailEntry{run_->fail_entry.hardware_entry_failure_reason};
    case KVM_EXIT_INTERNAL_ERROR:
      return InternalError{run_->internal.suberror};
    default:
      return UnknownExit{run_->exit_reason};
  }
}

VcpuExit VcpuFd::decode_io() noexcept {
  const auto& io = run_->io;
  const uint64_t bytes = uint64_t{io.size} * io.count;
  // The data lives inside the kvm_run mapping at data_offset; refuse anything that would
  // reach past it rather than trust the layout.
  if ((io.size != 1 && io.size != 2 && io.size != 4) || io.data_offset > mmap_size_ ||
      bytes > mmap_size_ - io.data_offset) {
    return InternalError{0xffffffffu};
  }
  auto* data = reinterpret_cast<uint8_t*>(run_) + io.data_offset;
  if (io.direction == KVM_EXIT_IO_OUT) {
    return IoOut{io.port, io.size, io.count, std::span<const uint8_t>(data, bytes)};
  }
  return IoIn{io.port, io.size, io.count, std::span<uint8_t>(data, bytes)};
}

}  // namespace forkvm
