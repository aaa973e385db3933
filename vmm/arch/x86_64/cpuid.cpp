#include "vmm/arch/x86_64/cpuid.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "forkvm/errors.hpp"
#include "memory/layout.hpp"

namespace forkvm::x86 {
namespace {

using Entries = std::vector<kvm_cpuid_entry2>;

/// Level types of leaves 0xB / 0x1F, ECX[15:8] (SDM Vol. 2A, CPUID leaf 0BH).
constexpr uint32_t kLevelInvalid = 0;
constexpr uint32_t kLevelSmt = 1;
constexpr uint32_t kLevelCore = 2;
constexpr uint32_t kAmdCmpLegacy = 1u << 1;  // 0x80000001 ECX[1] (APM Vol. 3 E.4.2)
constexpr uint32_t kTurboBoost = 1u << 1;    // leaf 6 EAX[1]

/// Replaces bits [lo, lo + width) of `value` with `field`.
uint32_t set_bits(uint32_t value, unsigned lo, unsigned width, uint32_t field) {
  const uint32_t mask = ((width >= 32 ? 0u : (1u << width)) - 1u) << lo;
  return (value & ~mask) | ((field << lo) & mask);
}

/// Bits needed to number `n` items: ceil(log2(n)), 0 for n <= 1.
uint32_t id_bits(uint32_t n) {
  uint32_t bits = 0;
  while ((1u << bits) < n) ++bits;
  return bits;
}

uint32_t max_basic_leaf(const Entries& e) {
  for (const kvm_cpuid_entry2& x : e) {
    if (x.function == 0) return x.eax;
  }
  return 0;
}

bool has_leaf(const Entries& e, uint32_t function) {
  return std::any_of(e.begin(), e.end(),
                     [&](const kvm_cpuid_entry2& x) { return x.function == function; });
}

/// Calls `fn` on every entry (every subleaf) of `function`.
template <typename Fn>
void for_leaf(Entries& e, uint32_t function, Fn fn) {
  for (kvm_cpuid_entry2& x : e) {
    if (x.function == function) fn(x);
  }
}

void normalize_leaf1(Entries& e, const CpuidConfig& c) {
  for_leaf(e, 1, [&](kvm_cpuid_entry2& x) {
    x.ebx = set_bits(x.ebx, 24, 8, c.vcpu_index);
    x.ebx = set_bits(x.ebx, 16, 8, c.vcpu_count);
    x.ebx = set_bits(x.ebx, 8, 8, 8);  // CLFLUSH line size in 8-byte units: 64 bytes
    x.ecx = (x.ecx | kCpuid1EcxHypervisor) & ~kCpuid1EcxPdcm;
    if (c.tsc_deadline) x.ecx |= kCpuid1EcxTscDeadline;
    x.edx = c.vcpu_count > 1 ? x.edx | kCpuid1EdxHtt : x.edx & ~kCpuid1EdxHtt;
  });
}

/// Replaces leaf `function` (0xB or 0x1F) with SMT, core and terminating levels.
void synthesize_topology(Entries& e, uint32_t function, const CpuidConfig& c) {
  std::erase_if(e, [&](const kvm_cpuid_entry2& x) { return x.function == function; });
  struct Level {
    uint32_t shift, count, type;
  };
  const Level levels[] = {{0, 1, kLevelSmt},
                          {id_bits(c.vcpu_count), c.vcpu_count, kLevelCore},
                          {0, 0, kLevelInvalid}};
  for (uint32_t i = 0; i < 3; ++i) {
    kvm_cpuid_entry2 x{};
    x.function = function;
    x.index = i;
    x.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    x.eax = levels[i].shift;
    x.ebx = levels[i].count;
    x.ecx = i | (levels[i].type << 8);
    x.edx = c.vcpu_index;
    e.push_back(x);
  }
}

/// Cache-sharing fields shared by Intel leaf 4 and AMD 0x8000001D: EAX[25:14] = logical
/// processors sharing the cache - 1. L1/L2 are per core (one thread), L3+ is per package.
void normalize_cache_sharing(kvm_cpuid_entry2& x, const CpuidConfig& c) {
  if ((x.eax & 0x1fu) == 0) return;  // cache type 0: no more caches
  const uint32_t level = (x.eax >> 5) & 0x7u;
  x.eax = set_bits(x.eax, 14, 12, level >= 3 ? c.vcpu_count - 1 : 0);
}

void normalize_intel(Entries& e, const CpuidConfig& c) {
  for_leaf(e, 4, [&](kvm_cpuid_entry2& x) {
    if ((x.eax & 0x1fu) == 0) return;
    normalize_cache_sharing(x, c);
    x.eax = set_bits(x.eax, 26, 6, c.vcpu_count - 1);  // cores per package - 1
  });
  for_leaf(e, 0xa, [](kvm_cpuid_entry2& x) { x.eax = x.ebx = x.ecx = x.edx = 0; });
}

void normalize_amd(Entries& e, const CpuidConfig& c) {
  for_leaf(e, 0x80000001, [&](kvm_cpuid_entry2& x) {
    x.ecx = c.vcpu_count > 1 ? x.ecx | kAmdCmpLegacy : x.ecx & ~kAmdCmpLegacy;
  });
  for_leaf(e, 0x80000008, [&](kvm_cpuid_entry2& x) {
    x.ecx = set_bits(x.ecx, 0, 8, c.vcpu_count - 1);        // NC: cores - 1
    x.ecx = set_bits(x.ecx, 12, 4, id_bits(c.vcpu_count));  // ApicIdSize
  });
  for_leaf(e, 0x8000001d, [&](kvm_cpuid_entry2& x) { normalize_cache_sharing(x, c); });
  for_leaf(e, 0x8000001e, [&](kvm_cpuid_entry2& x) {
    x.eax = c.vcpu_index;                            // extended APIC ID
    x.ebx = set_bits(x.ebx, 0, 16, c.vcpu_index);    // core ID; threads per core - 1 = 0
    x.ecx = set_bits(x.ecx, 0, 11, 0);               // node 0, one node per processor
  });
}

void add_timing_leaf(Entries& e, uint32_t tsc_khz) {
  if (tsc_khz == 0 || !has_leaf(e, kCpuidHypervisorBase)) return;
  for_leaf(e, kCpuidHypervisorBase,
           [](kvm_cpuid_entry2& x) { x.eax = std::max(x.eax, kCpuidTimingLeaf); });
  std::erase_if(e, [](const kvm_cpuid_entry2& x) { return x.function == kCpuidTimingLeaf; });
  kvm_cpuid_entry2 x{};
  x.function = kCpuidTimingLeaf;
  x.eax = tsc_khz;
  x.ebx = kKvmApicBusKhz;
  e.push_back(x);
}

}  // namespace

CpuVendor cpu_vendor(std::span<const kvm_cpuid_entry2> entries) {
  for (const kvm_cpuid_entry2& x : entries) {
    if (x.function != 0) continue;
    char vendor[12];  // EBX, EDX, ECX order (SDM Vol. 2A, CPUID leaf 0)
    std::memcpy(vendor, &x.ebx, 4);
    std::memcpy(vendor + 4, &x.edx, 4);
    std::memcpy(vendor + 8, &x.ecx, 4);
    const std::string_view v(vendor, sizeof vendor);
    if (v == "GenuineIntel") return CpuVendor::Intel;
    if (v == "AuthenticAMD" || v == "HygonGenuine") return CpuVendor::Amd;
    return CpuVendor::Other;
  }
  return CpuVendor::Other;
}

std::vector<kvm_cpuid_entry2> normalize_cpuid(std::span<const kvm_cpuid_entry2> supported,
                                              const CpuidConfig& config) {
  if (config.vcpu_count == 0 || config.vcpu_count > layout::kMaxVcpus ||
      config.vcpu_index >= config.vcpu_count) {
    throw ConfigError("vCPU " + std::to_string(config.vcpu_index) + " of " +
                      std::to_string(config.vcpu_count) + " is not valid (1.." +
                      std::to_string(layout::kMaxVcpus) + " vCPUs)");
  }
  Entries e(supported.begin(), supported.end());
  normalize_leaf1(e, config);
  if (has_leaf(e, 0xb) || max_basic_leaf(e) >= 0xb) synthesize_topology(e, 0xb, config);
  if (has_leaf(e, 0x1f)) synthesize_topology(e, 0x1f, config);
  for_leaf(e, 6, [](kvm_cpuid_entry2& x) { x.eax &= ~kTurboBoost; });
  switch (cpu_vendor(supported)) {
    case CpuVendor::Intel: normalize_intel(e, config); break;
    case CpuVendor::Amd: normalize_amd(e, config); break;
    case CpuVendor::Other: break;
  }
  add_timing_leaf(e, config.tsc_khz);
  return e;
}

}  // namespace forkvm::x86
