// C-layout headers for the KVM structs that end in a flexible array, and the ioctl numbers
// built from them.
//
// Why: Debian 12's uapi headers (linux-libc-dev 6.1) declare those arrays with
// __DECLARE_FLEX_ARRAY, which wraps them next to an empty struct. An empty struct is 0 bytes in
// C but 1 byte in C++, so under C++ sizeof(kvm_msrs) is 16 instead of 8, `entries` moves to
// offset 16, and _IOW(KVMIO, 0x89, struct kvm_msrs) encodes the wrong size: the kernel rejects
// KVM_SET_MSRS and friends with EINVAL as unknown ioctls. (Measured: kvm_msrs 16/16,
// kvm_cpuid2 12/12, kvm_msr_list 8 under g++ 12.) These headers have the C layout; the
// static_asserts pin them to the values the kernel expects.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace forkvm::kvm_abi {

/// struct kvm_msrs without its flexible array; kvm_msr_entry[nmsrs] follows at offset 8.
struct MsrsHeader {
  uint32_t nmsrs;
  uint32_t pad;
};
/// struct kvm_cpuid2 without its flexible array; kvm_cpuid_entry2[nent] follows at offset 8.
struct Cpuid2Header {
  uint32_t nent;
  uint32_t padding;
};
/// struct kvm_msr_list without its flexible array; uint32_t[nmsrs] follows at offset 4.
struct MsrListHeader {
  uint32_t nmsrs;
};

/// struct kvm_xsave without its flexible array: the legacy 4 KiB area. KVM_GET_XSAVE2 and
/// KVM_SET_XSAVE transfer KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) bytes (at least this many), so the
/// buffer handed to them must be at least that large.
struct XsaveHeader {
  uint32_t region[1024];
};

inline constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, Cpuid2Header);
inline constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, Cpuid2Header);
inline constexpr unsigned long kGetCpuid2 = _IOWR(KVMIO, 0x91, Cpuid2Header);
inline constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, XsaveHeader);
inline constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, XsaveHeader);
inline constexpr unsigned long kGetXsave2 = _IOR(KVMIO, 0xcf, XsaveHeader);

static_assert(sizeof(MsrsHeader) == 8 && sizeof(Cpuid2Header) == 8 && sizeof(MsrListHeader) == 4);
static_assert(sizeof(kvm_msr_entry) == 16 && sizeof(kvm_cpuid_entry2) == 40);
// The numbers the kernel's C headers produce (include/uapi/linux/kvm.h, x86_64).
static_assert(kGetMsrIndexList == 0xc004ae02ul);
static_assert(kGetSupportedCpuid == 0xc008ae05ul);
static_assert(kGetMsrs == 0xc008ae88ul);
static_assert(kSetMsrs == 0x4008ae89ul);
static_assert(kSetCpuid2 == 0x4008ae90ul);
static_assert(kGetCpuid2 == 0xc008ae91ul);
// kvm_xsave also ends in __DECLARE_FLEX_ARRAY, so KVM_GET_XSAVE & co. are wrong under C++ too.
static_assert(sizeof(XsaveHeader) == 4096);
static_assert(kGetXsave == 0x9000aea4ul);
static_assert(kSetXsave == 0x5000aea5ul);
static_assert(kGetXsave2 == 0x9000aecful);

/// struct kvm_stats_desc without its flexible array (KVM_GET_STATS_FD): flags u32, exponent s16,
/// size u16, offset u32, bucket_size u32; the name (name_size bytes) follows at offset 16.
/// sizeof(struct kvm_stats_desc) is 20 in C++, not the ABI's 16.
struct StatsDescFixed {
  uint32_t flags;
  int16_t exponent;
  uint16_t size;
  uint32_t offset;
  uint32_t bucket_size;
};
static_assert(sizeof(StatsDescFixed) == 16);

// --- newer than Debian 12's uapi headers (Linux 6.10+) ----------------------------------------

/// struct kvm_pre_fault_memory (include/uapi/linux/kvm.h since 6.10): the guest-physical range
/// to map into KVM's stage-2 (NPT/EPT) tables; the kernel moves gpa and shrinks size as it goes.
struct PreFaultMemory {
  uint64_t gpa;
  uint64_t size;
  uint64_t flags;  ///< must be 0
  uint64_t padding[5];
};
/// KVM_CAP_PRE_FAULT_MEMORY: KVM_CHECK_EXTENSION says whether the ioctl exists.
inline constexpr int kCapPreFaultMemory = 236;
inline constexpr unsigned long kPreFaultMemory = _IOWR(KVMIO, 0xd5, PreFaultMemory);
static_assert(sizeof(PreFaultMemory) == 64);
static_assert(kPreFaultMemory == 0xc040aed5ul);

}  // namespace forkvm::kvm_abi
