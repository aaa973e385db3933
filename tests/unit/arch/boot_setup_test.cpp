#include "vmm/arch/x86_64/boot_setup.hpp"

#include <gtest/gtest.h>

#include "arch_test_util.hpp"
#include "forkvm/errors.hpp"
#include "memory/layout.hpp"

namespace forkvm::x86 {
namespace {

using test::FakeBzImage;
using test::FakeElf;
using test::TempFile;

class BootSetupTest : public testing::Test {
 protected:
  GuestMemory mem_ = GuestMemory::create_anonymous(test::kTestMemSize);
};

TEST_F(BootSetupTest, BzImageWithInitrd) {
  const TempFile kernel(FakeBzImage{}.bytes());
  const TempFile initrd(std::vector<uint8_t>(3000, 0xab));
  BootConfig cfg{kernel.path(), initrd.path(), "console=ttyS0 panic=1", 2};
  const BootPlan plan = prepare_linux_boot(mem_, cfg);

  EXPECT_EQ(plan.kernel.entry, 0x100200u);
  EXPECT_EQ(plan.cr3, layout::kPml4Start);
  ASSERT_TRUE(plan.initrd.has_value());
  const uint64_t zp = layout::kZeroPageStart;
  EXPECT_EQ(mem_.read_obj<uint32_t>(zp + 0x202), kHdrSMagic);
  EXPECT_EQ(mem_.read_obj<uint16_t>(zp + 0x206), 0x020fu);       // kernel's own version
  EXPECT_EQ(mem_.read_obj<uint32_t>(zp + 0x214), 0x100000u);     // code32_start
  EXPECT_EQ(mem_.read_obj<uint32_t>(zp + 0x228), layout::kCmdlineStart);
  EXPECT_EQ(mem_.read_obj<uint32_t>(zp + 0x238), 22u);           // strlen + NUL
  EXPECT_EQ(mem_.read_obj<uint32_t>(zp + 0x218), plan.initrd->gpa);
  EXPECT_EQ(mem_.read_obj<uint32_t>(zp + 0x21c), 3000u);
  EXPECT_EQ(mem_.read_obj<uint8_t>(zp + 0x1e8), 3u);
  EXPECT_EQ(mem_.read_obj<uint8_t>(layout::kCmdlineStart + 21), 0u);
  EXPECT_EQ(mem_.read_obj<uint64_t>(layout::kPml4Start), 0xa003u);
  EXPECT_EQ(mem_.read_obj<uint64_t>(layout::kGdtStart + 8), 0x00af9b000000ffffull);
  EXPECT_EQ(mem_.read_obj<uint32_t>(layout::kMpTableStart), 0x5f504d5fu);  // "_MP_"

  const kvm_regs r = plan.regs();
  EXPECT_EQ(r.rip, 0x100200u);
  EXPECT_EQ(r.rsi, layout::kZeroPageStart);
  const kvm_sregs s = plan.sregs(kvm_sregs{});
  EXPECT_EQ(s.cr3, layout::kPml4Start);
  EXPECT_EQ(s.cs.l, 1);
  EXPECT_EQ(plan.fpu().fcw, 0x37f);
}

TEST_F(BootSetupTest, ElfWithoutInitrd) {
  const TempFile kernel(FakeElf{}.bytes());
  const BootPlan plan = prepare_linux_boot(mem_, {kernel.path(), std::nullopt, "", 1});
  EXPECT_EQ(plan.kernel.entry, 0x1000000u);
  EXPECT_FALSE(plan.initrd.has_value());
  const uint64_t zp = layout::kZeroPageStart;
  EXPECT_EQ(mem_.read_obj<uint32_t>(zp + 0x230), 16u << 20);  // kernel_alignment
  EXPECT_EQ(mem_.read_obj<uint32_t>(zp + 0x218), 0u);
  EXPECT_EQ(mem_.read_obj<uint32_t>(zp + 0x238), 1u);
}

TEST_F(BootSetupTest, ConfigErrors) {
  const TempFile kernel(FakeBzImage{}.bytes());
  EXPECT_THROW(prepare_linux_boot(mem_, {kernel.path(), std::nullopt, "", 0}), ConfigError);
  EXPECT_THROW(prepare_linux_boot(mem_, {kernel.path(), std::nullopt, "", 65}), ConfigError);
  EXPECT_THROW(prepare_linux_boot(mem_, {kernel.path(), std::nullopt, std::string(2048, 'x'), 1}),
               ConfigError);
  EXPECT_THROW(prepare_linux_boot(mem_, {"/nonexistent/bzImage", std::nullopt, "", 1}),
               ImageError);
}

}  // namespace
}  // namespace forkvm::x86
