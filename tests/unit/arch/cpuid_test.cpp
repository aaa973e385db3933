#include "vmm/arch/x86_64/cpuid.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>

#include "forkvm/errors.hpp"

namespace forkvm::x86 {
namespace {

using Entries = std::vector<kvm_cpuid_entry2>;

kvm_cpuid_entry2 leaf(uint32_t fn, uint32_t index, uint32_t eax, uint32_t ebx, uint32_t ecx,
                      uint32_t edx, uint32_t flags = 0) {
  kvm_cpuid_entry2 e{};
  e.function = fn;
  e.index = index;
  e.flags = flags;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

/// Leaf 0 or 0x40000000 with a 12-character signature in EBX, ECX, EDX order as given.
kvm_cpuid_entry2 signature_leaf(uint32_t fn, uint32_t eax, const char* sig, bool vendor_order) {
  uint32_t r[3];
  std::memcpy(r, sig, 12);
  // Leaf 0 stores the vendor as EBX, EDX, ECX; the hypervisor leaf as EBX, ECX, EDX.
  return vendor_order ? leaf(fn, 0, eax, r[0], r[2], r[1]) : leaf(fn, 0, eax, r[0], r[1], r[2]);
}

constexpr uint32_t kSig = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
// KVM_FEATURE_CLOCKSOURCE, KVM_FEATURE_CLOCKSOURCE2, KVM_FEATURE_CLOCKSOURCE_STABLE_BIT.
constexpr uint32_t kKvmFeatures = (1u << 0) | (1u << 3) | (1u << 24);

/// A plausible KVM_GET_SUPPORTED_CPUID on an Intel host.
Entries intel_host() {
  return {
      signature_leaf(0, 0x1f, "GenuineIntel", true),
      // ECX: PDCM set, TSC_DEADLINE clear.
      leaf(1, 0, 0x000906ea, 0x12345678, 0x7efaf203 | (1u << 15), 0x0f8bfbff),
      leaf(4, 0, 0x1c004121, 0x01c0003f, 0x3f, 0, kSig),  // L1d, 8 sharing, 8 cores
      leaf(4, 1, 0x1c004122, 0x01c0003f, 0x3f, 0, kSig),  // L1i
      leaf(4, 2, 0x1c004143, 0x00c0003f, 0x3ff, 0, kSig),  // L2
      leaf(4, 3, 0x1c03c163, 0x03c0003f, 0x2fff, 6, kSig),  // L3
      leaf(4, 4, 0, 0, 0, 0, kSig),
      leaf(6, 0, 0x4, 0, 1, 0),
      leaf(0xa, 0, 0x07300404, 0, 0, 0x603),
      leaf(0xb, 0, 1, 2, 0x100, 7, kSig),
      leaf(0xb, 1, 4, 16, 0x201, 7, kSig),
      leaf(0x1f, 0, 1, 2, 0x100, 7, kSig),
      leaf(0x1f, 1, 4, 16, 0x201, 7, kSig),
      signature_leaf(0x40000000, 0x40000001, "KVMKVMKVM\0\0\0", false),
      leaf(0x40000001, 0, kKvmFeatures, 0, 0, 0),
      leaf(0x80000000, 0, 0x80000008, 0, 0, 0),
      leaf(0x80000001, 0, 0, 0, 0x121, 0x2c100800),
      leaf(0x80000008, 0, 0x3027, 0, 0, 0),
  };
}

/// A plausible KVM_GET_SUPPORTED_CPUID on an AMD host.
Entries amd_host() {
  return {
      signature_leaf(0, 0x10, "AuthenticAMD", true),
      leaf(1, 0, 0x00a20f10, 0x00100800, 0x7ed8320b, 0x178bfbff),
      leaf(0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
      leaf(0x80000001, 0, 0, 0, 0x75c237ff, 0x2fd3fbff),
      leaf(0x80000008, 0, 0x3030, 0, 0x700f, 0),
      leaf(0x8000001d, 0, 0x00004121, 0x01c0003f, 0x3f, 0, kSig),
      leaf(0x8000001d, 1, 0x00004163, 0x03c0003f, 0x7fff, 1, kSig),
      leaf(0x8000001e, 0, 7, 0x0107, 0x0301, 0),
  };
}

std::optional<kvm_cpuid_entry2> find(const Entries& e, uint32_t fn, uint32_t index = 0) {
  for (const auto& x : e) {
    if (x.function == fn && x.index == index) return x;
  }
  return std::nullopt;
}

int count(const Entries& e, uint32_t fn) {
  int n = 0;
  for (const auto& x : e) n += x.function == fn ? 1 : 0;
  return n;
}

TEST(Cpuid, Vendor) {
  EXPECT_EQ(cpu_vendor(intel_host()), CpuVendor::Intel);
  EXPECT_EQ(cpu_vendor(amd_host()), CpuVendor::Amd);
  EXPECT_EQ(cpu_vendor(Entries{}), CpuVendor::Other);
  EXPECT_EQ(cpu_vendor(Entries{signature_leaf(0, 1, "CentaurHauls", true)}), CpuVendor::Other);
}

TEST(Cpuid, Leaf1PerVcpu) {
  for (uint32_t i = 0; i < 4; ++i) {
    const Entries e = normalize_cpuid(intel_host(), {i, 4, true, 0});
    const auto l1 = find(e, 1).value();
    EXPECT_EQ(l1.ebx >> 24, i);
    EXPECT_EQ((l1.ebx >> 16) & 0xff, 4u);
    EXPECT_EQ((l1.ebx >> 8) & 0xff, 8u);
    EXPECT_EQ(l1.ebx & 0xff, 0x78u);  // brand index kept
    EXPECT_TRUE(l1.ecx & kCpuid1EcxHypervisor);
    EXPECT_TRUE(l1.ecx & kCpuid1EcxTscDeadline);
    EXPECT_FALSE(l1.ecx & kCpuid1EcxPdcm);
    EXPECT_TRUE(l1.edx & kCpuid1EdxHtt);
  }
}

TEST(Cpuid, SingleVcpuClearsHttAndLeavesTscDeadlineAsGiven) {
  const Entries e = normalize_cpuid(intel_host(), {0, 1, false, 0});
  const auto l1 = find(e, 1).value();
  EXPECT_FALSE(l1.edx & kCpuid1EdxHtt);
  EXPECT_FALSE(l1.ecx & kCpuid1EcxTscDeadline);  // host list had it clear
  EXPECT_EQ((l1.ebx >> 16) & 0xff, 1u);
}

TEST(Cpuid, X2apicTopologyLeaves) {
  for (uint32_t fn : {0xbu, 0x1fu}) {
    const Entries e = normalize_cpuid(intel_host(), {5, 6, true, 0});
    EXPECT_EQ(count(e, fn), 3);
    const auto smt = find(e, fn, 0).value();
    const auto core = find(e, fn, 1).value();
    const auto end = find(e, fn, 2).value();
    EXPECT_EQ(smt.eax, 0u);
    EXPECT_EQ(smt.ebx, 1u);
    EXPECT_EQ(smt.ecx, 0x100u);
    EXPECT_EQ(core.eax, 3u);  // ceil(log2 6)
    EXPECT_EQ(core.ebx, 6u);
    EXPECT_EQ(core.ecx, 0x201u);
    EXPECT_EQ(end.ebx, 0u);
    EXPECT_EQ((end.ecx >> 8) & 0xff, 0u);
    for (const auto& x : {smt, core, end}) {
      EXPECT_EQ(x.edx, 5u);
      EXPECT_EQ(x.flags & kSig, kSig);
    }
  }
}

TEST(Cpuid, TopologyShiftForPowersOfTwo) {
  EXPECT_EQ(find(normalize_cpuid(intel_host(), {0, 1, false, 0}), 0xb, 1)->eax, 0u);
  EXPECT_EQ(find(normalize_cpuid(intel_host(), {0, 2, false, 0}), 0xb, 1)->eax, 1u);
  EXPECT_EQ(find(normalize_cpuid(intel_host(), {0, 64, false, 0}), 0xb, 1)->eax, 6u);
}

TEST(Cpuid, IntelCacheLeafPmuAndTurbo) {
  const Entries e = normalize_cpuid(intel_host(), {0, 6, true, 0});
  for (uint32_t sub = 0; sub < 4; ++sub) {
    const auto c = find(e, 4, sub).value();
    EXPECT_EQ(c.eax >> 26, 5u) << sub;
    const uint32_t sharing = (c.eax >> 14) & 0xfff;
    EXPECT_EQ(sharing, sub == 3 ? 5u : 0u) << sub;
    EXPECT_EQ(c.eax & 0x3fff, find(intel_host(), 4, sub)->eax & 0x3fff);  // type/level kept
  }
  EXPECT_EQ(find(e, 4, 4)->eax, 0u);
  const auto pmu = find(e, 0xa).value();
  EXPECT_EQ(pmu.eax | pmu.ebx | pmu.ecx | pmu.edx, 0u);
  EXPECT_FALSE(find(e, 6)->eax & 2u);
  EXPECT_TRUE(find(e, 6)->eax & 4u);  // ARAT kept
}

TEST(Cpuid, KvmLeavesPassThrough) {
  const Entries e = normalize_cpuid(intel_host(), {0, 2, true, 0});
  const auto sig = find(e, 0x40000000).value();
  EXPECT_EQ(sig.eax, 0x40000001u);
  EXPECT_EQ(std::memcmp(&sig.ebx, "KVMK", 4), 0);
  EXPECT_EQ(find(e, 0x40000001)->eax, kKvmFeatures);
  EXPECT_FALSE(find(e, kCpuidTimingLeaf).has_value());
}

TEST(Cpuid, TscFrequencyLeaf) {
  const Entries e = normalize_cpuid(intel_host(), {0, 2, true, 2904000});
  EXPECT_EQ(find(e, 0x40000000)->eax, kCpuidTimingLeaf);
  const auto t = find(e, kCpuidTimingLeaf).value();
  EXPECT_EQ(t.eax, 2904000u);
  EXPECT_EQ(t.ebx, 1000000u);
  EXPECT_EQ(find(e, 0x40000001)->eax, kKvmFeatures);
  // No hypervisor leaf, no timing leaf.
  Entries bare = intel_host();
  std::erase_if(bare, [](const auto& x) {
    return x.function >= 0x40000000 && x.function < 0x80000000;
  });
  EXPECT_FALSE(find(normalize_cpuid(bare, {0, 1, true, 2904000}), kCpuidTimingLeaf).has_value());
}

TEST(Cpuid, AmdTopology) {
  const Entries e = normalize_cpuid(amd_host(), {3, 4, true, 0});
  EXPECT_TRUE(find(e, 0x80000001)->ecx & 2u);  // CmpLegacy
  const auto l8 = find(e, 0x80000008).value();
  EXPECT_EQ(l8.ecx & 0xff, 3u);
  EXPECT_EQ((l8.ecx >> 12) & 0xf, 2u);
  const auto l1e = find(e, 0x8000001e).value();
  EXPECT_EQ(l1e.eax, 3u);
  EXPECT_EQ(l1e.ebx & 0xffff, 3u);
  EXPECT_EQ(l1e.ecx & 0x7ff, 0u);
  EXPECT_EQ((find(e, 0x8000001d, 0)->eax >> 14) & 0xfff, 0u);
  EXPECT_EQ((find(e, 0x8000001d, 1)->eax >> 14) & 0xfff, 3u);
  EXPECT_EQ(find(e, 1)->ebx >> 24, 3u);
  // AMD host with max basic leaf 0x10 >= 0xb: the x2APIC leaf is synthesized.
  EXPECT_EQ(count(e, 0xb), 3);
  EXPECT_EQ(count(e, 0x1f), 0);
  EXPECT_FALSE(find(normalize_cpuid(amd_host(), {0, 1, true, 0}), 0x80000001)->ecx & 2u);
}

TEST(Cpuid, RejectsBadVcpuNumbers) {
  EXPECT_THROW(normalize_cpuid(intel_host(), {0, 0, true, 0}), ConfigError);
  EXPECT_THROW(normalize_cpuid(intel_host(), {2, 2, true, 0}), ConfigError);
  EXPECT_THROW(normalize_cpuid(intel_host(), {0, 65, true, 0}), ConfigError);
}

TEST(Cpuid, OtherLeavesUntouched) {
  const Entries in = intel_host();
  const Entries e = normalize_cpuid(in, {1, 2, true, 0});
  const kvm_cpuid_entry2 before = find(in, 0).value();
  const kvm_cpuid_entry2 after = find(e, 0).value();
  EXPECT_EQ(std::memcmp(&before, &after, sizeof before), 0);
  EXPECT_EQ(find(e, 0x80000008)->ecx, 0u);  // Intel: AMD leaf fields not touched
}

}  // namespace
}  // namespace forkvm::x86
