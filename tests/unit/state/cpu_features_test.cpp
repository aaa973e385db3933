#include "vmm/state/cpu_features.hpp"

#include <gtest/gtest.h>

#include <string>

#include "forkvm/errors.hpp"

namespace forkvm::state {
namespace {

kvm_cpuid_entry2 leaf(uint32_t function, uint32_t index, uint32_t eax, uint32_t ebx, uint32_t ecx,
                      uint32_t edx) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.flags = (function == 7 || function == 0xd) ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

constexpr uint32_t kAvx = 1u << 28, kXsave = 1u << 26, kOsxsave = 1u << 27;
constexpr uint32_t kAvx2 = 1u << 5, kAvx512f = 1u << 16, kAvx512bw = 1u << 30;

TEST(CpuFeatures, SubsetPasses) {
  const std::vector<kvm_cpuid_entry2> host = {leaf(1, 0, 0, 0, kAvx | kXsave, 0),
                                              leaf(7, 0, 0, kAvx2 | kAvx512f, 0, 0)};
  const std::vector<kvm_cpuid_entry2> snap = {leaf(1, 0, 0, 0, kAvx | kOsxsave, 0),
                                              leaf(7, 0, 0, kAvx2, 0, 0)};
  EXPECT_TRUE(missing_cpu_features(snap, host).empty());  // OSXSAVE is the guest's, not KVM's
  EXPECT_NO_THROW(require_cpu_features(snap, host));
}

TEST(CpuFeatures, MissingFeaturesAreNamed) {
  const std::vector<kvm_cpuid_entry2> host = {leaf(1, 0, 0, 0, kXsave, 0),
                                              leaf(7, 0, 0, kAvx2, 0, 0),
                                              leaf(0xd, 0, 0x7, 0, 0, 0)};
  const std::vector<kvm_cpuid_entry2> snap = {leaf(1, 0, 0, 0, kAvx | kXsave, 0),
                                              leaf(7, 0, 0, kAvx2 | kAvx512f | kAvx512bw | (1u << 2), 0, 0),
                                              leaf(0xd, 0, 0xe7, 0, 0, 0),
                                              leaf(0x7, 1, 1u << 4, 0, 0, 0)};
  const auto missing = missing_cpu_features(snap, host);
  std::vector<std::string> names;
  for (const auto& m : missing) names.push_back(m.name);
  EXPECT_EQ(names, (std::vector<std::string>{"avx", "leaf 0x7.0 ebx bit 2", "avx512f", "avx512bw",
                                             "avx_vnni", "xsave:opmask", "xsave:zmm_hi256",
                                             "xsave:hi16_zmm"}));
  try {
    require_cpu_features(snap, host);
    FAIL() << "accepted";
  } catch (const SnapshotError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("avx512f (leaf 0x7.0 ebx bit 16)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("avx (leaf 0x1.0 ecx bit 28)"), std::string::npos) << msg;
  }
}

TEST(CpuFeatures, LeafAbsentOnTheHostMeansEveryBitIsMissing) {
  const std::vector<kvm_cpuid_entry2> host = {leaf(1, 0, 0, 0, 0, 0)};
  const std::vector<kvm_cpuid_entry2> snap = {leaf(0x80000001, 0, 0, 0, 0, (1u << 29) | (1u << 20))};
  const auto missing = missing_cpu_features(snap, host);
  ASSERT_EQ(missing.size(), 2u);
  EXPECT_EQ(missing[0].name, "nx");
  EXPECT_EQ(missing[1].name, "lm");
}

}  // namespace
}  // namespace forkvm::state
