#include "vmm/kvm/kvm_system.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <memory>

#include "forkvm/errors.hpp"
#include "vmm/kvm/kvm_abi.hpp"
#include "vmm/kvm/vm_fd.hpp"

namespace forkvm {
namespace {

/// KVM_GET_SUPPORTED_CPUID needs a buffer sized up front; it fails with E2BIG when too small.
constexpr uint32_t kMaxCpuidEntries = 256;
constexpr uint32_t kMaxMsrIndices = 1024;

}  // namespace

KvmSystem KvmSystem::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const char* hint = err == ENOENT   ? "this host has no KVM: use a host with Intel VT-x or AMD-V (bare metal, or a "
                                         "VM with nested virtualization) with kvm_intel/kvm_amd loaded, "
                                         "or run forkvm inside tools/kvm-lab"
                       : err == EACCES ? "no permission (add the user to the kvm group, or run as root)"
                                       : "";
    throw KvmError("open " + path, err, hint);
  }
  KvmSystem kvm{Fd(fd)};
  const int version = ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    throw KvmError("KVM_GET_API_VERSION returned " + std::to_string(version) + ", need " +
                       std::to_string(KVM_API_VERSION),
                   version < 0 ? errno : EINVAL);
  }
  return kvm;
}

int KvmSystem::check_extension(int cap) const {
  const int r = ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

size_t KvmSystem::vcpu_mmap_size() const {
  const int r = ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (r <= 0) throw KvmError("KVM_GET_VCPU_MMAP_SIZE", r < 0 ? errno : EINVAL);
  return static_cast<size_t>(r);
}

std::vector<kvm_cpuid_entry2> KvmSystem::supported_cpuid() const {
  // kvm_cpuid2 ends in a flexible array; allocate header + entries as one block.
  // C-layout header + entries (see kvm_abi.hpp for why not struct kvm_cpuid2).
  struct {
    kvm_abi::Cpuid2Header header;
    kvm_cpuid_entry2 entries[kMaxCpuidEntries];
  } buf{};
  static_assert(offsetof(decltype(buf), entries) == sizeof(kvm_abi::Cpuid2Header));
  buf.header.nent = kMaxCpuidEntries;
  if (ioctl(fd_.get(), kvm_abi::kGetSupportedCpuid, &buf) < 0) {
    throw KvmError("KVM_GET_SUPPORTED_CPUID", errno);
  }
  const uint32_t n = std::min(buf.header.nent, kMaxCpuidEntries);
  return {buf.entries, buf.entries + n};
}

std::vector<uint32_t> KvmSystem::msr_index_list() const {
  struct {
    kvm_abi::MsrListHeader header;
    uint32_t indices[kMaxMsrIndices];
  } buf{};
  static_assert(offsetof(decltype(buf), indices) == sizeof(kvm_abi::MsrListHeader));
  buf.header.nmsrs = kMaxMsrIndices;
  if (ioctl(fd_.get(), kvm_abi::kGetMsrIndexList, &buf) < 0) {
    throw KvmError("KVM_GET_MSR_INDEX_LIST", errno);
  }
  const uint32_t n = std::min(buf.header.nmsrs, kMaxMsrIndices);
  return {buf.indices, buf.indices + n};
}

VmFd KvmSystem::create_vm() const {
  // KVM_CREATE_VM can be interrupted while the kernel waits on locks; retry on EINTR.
  int fd;
  do {
    fd = ioctl(fd_.get(), KVM_CREATE_VM, 0);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw KvmError("KVM_CREATE_VM", errno);
  return VmFd(Fd(fd), vcpu_mmap_size());
}

void require_capabilities(const KvmSystem& kvm,
                          const std::vector<std::pair<int, const char*>>& caps) {
  for (const auto& [cap, name] : caps) {
    if (kvm.check_extension(cap) <= 0) {
      throw KvmError(std::string("KVM_CHECK_EXTENSION(") + name + "): capability missing", ENOTSUP);
    }
  }
}

}  // namespace forkvm
