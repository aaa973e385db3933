#include "vmm/state/msr_list.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace forkvm::state {
namespace {

bool has(const std::vector<uint32_t>& v, uint32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(MsrList, FiltersTheIndexListAndAddsMtrrs) {
  // A plausible KVM_GET_MSR_INDEX_LIST: architectural, PV, perf counters, VMX caps, Hyper-V.
  const std::vector<uint32_t> index = {
      0x174, 0x175, 0x176, 0xc0000081, 0xc0000083, 0xc0000102, 0xc0000084, 0xc0000082, 0x10,
      0x277, 0xc0000103, 0x48, 0x4b564d00, 0x4b564d01, 0x4b564d02, 0x4b564d03, 0x4b564d04,
      0x4b564d05, 0x4b564d06, 0x4b564d07, 0x11, 0x12, 0x3b, 0x6e0, 0x1a0,
      0xc1, 0x186, 0x38f,   // perf counters: left out
      0x480, 0x48b,         // VMX capabilities: left out
      0x40000000,           // Hyper-V guest OS id: left out
      0x10,                 // duplicates are dropped
  };
  const auto out = msrs_to_save(index);
  EXPECT_EQ(out.front(), 0x10u);   // TSC first
  EXPECT_EQ(out.back(), 0x6e0u);   // TSC_DEADLINE last
  for (uint32_t m : {0x174u, 0xc0000082u, 0xc0000102u, 0x277u, 0x1a0u, 0x48u, 0x3bu, 0x11u,
                     0x4b564d00u, 0x4b564d03u, 0x4b564d04u, 0x4b564d05u, 0x2ffu, 0x250u, 0x20fu}) {
    EXPECT_TRUE(has(out, m)) << std::hex << m;
  }
  for (uint32_t m : {0xc1u, 0x186u, 0x38fu, 0x480u, 0x48bu, 0x40000000u, 0xfeu}) {
    EXPECT_FALSE(has(out, m)) << std::hex << m;
  }
  EXPECT_EQ(std::count(out.begin(), out.end(), 0x10u), 1);
  const auto pos = [&](uint32_t m) { return std::find(out.begin(), out.end(), m) - out.begin(); };
  EXPECT_LT(pos(0x4b564d06), pos(0x4b564d02));  // ASYNC_PF_INT before ASYNC_PF_EN
}

TEST(MsrList, RestoreOrderWhateverTheInput) {
  std::vector<kvm_msr_entry> e = {{0x6e0, 0, 1}, {0x4b564d02, 0, 2}, {0x174, 0, 3},
                                  {0x4b564d06, 0, 4}, {0x10, 0, 5}};
  restore_order(e);
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e[0].index, 0x10u);
  EXPECT_EQ(e[1].index, 0x4b564d06u);
  EXPECT_EQ(e[2].index, 0x4b564d02u);
  EXPECT_EQ(e[3].index, 0x174u);
  EXPECT_EQ(e[4].index, 0x6e0u);
  EXPECT_EQ(e[4].data, 1u);  // data moves with its index
}

}  // namespace
}  // namespace forkvm::state
