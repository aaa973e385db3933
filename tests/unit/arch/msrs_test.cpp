#include "vmm/arch/x86_64/msrs.hpp"

#include <gtest/gtest.h>

#include <map>

namespace forkvm::x86 {
namespace {

TEST(Msrs, BootList) {
  std::map<uint32_t, uint64_t> m;
  for (const kvm_msr_entry& e : boot_msrs()) {
    EXPECT_TRUE(m.emplace(e.index, e.data).second) << "duplicate MSR " << e.index;
    EXPECT_EQ(e.reserved, 0u);
  }
  const std::map<uint32_t, uint64_t> want = {
      {0x174, 0}, {0x175, 0}, {0x176, 0}, {0xc0000081, 0}, {0xc0000083, 0}, {0xc0000102, 0},
      {0xc0000084, 0}, {0xc0000082, 0}, {0x10, 0}, {0x1a0, 1}, {0x2ff, 0x806}};
  EXPECT_EQ(m, want);
}

}  // namespace
}  // namespace forkvm::x86
