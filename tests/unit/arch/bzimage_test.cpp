// bzImage loading through load_kernel (bzimage.cpp has no public entry of its own).
#include <gtest/gtest.h>

#include "arch_test_util.hpp"
#include "forkvm/errors.hpp"
#include "memory/layout.hpp"
#include "vmm/arch/x86_64/kernel_loader.hpp"

namespace forkvm::x86 {
namespace {

using test::FakeBzImage;
using test::TempFile;

class BzImageTest : public testing::Test {
 protected:
  LoadedKernel load(const FakeBzImage& bz) {
    const TempFile f(bz.bytes());
    return load_kernel(mem_, f.path());
  }
  void expect_image_error(const FakeBzImage& bz, const std::string& needle) {
    try {
      load(bz);
      ADD_FAILURE() << "accepted an image that should fail with: " << needle;
    } catch (const ImageError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  GuestMemory mem_ = GuestMemory::create_anonymous(test::kTestMemSize);
};

TEST_F(BzImageTest, LoadsProtectedModePartAtOneMiB) {
  FakeBzImage bz;
  const LoadedKernel k = load(bz);
  EXPECT_EQ(k.format, KernelFormat::BzImage);
  EXPECT_EQ(k.entry, 0x100200u);
  EXPECT_EQ(k.start, 0x100000u);
  // Relocatable with 2 MiB alignment: runtime start 2 MiB, plus init_size 8 MiB.
  EXPECT_EQ(k.end, 0x200000u + 0x800000u);
  ASSERT_TRUE(k.header.has_value());
  const uint16_t version = k.header->version;
  const uint32_t code32 = k.header->code32_start;
  EXPECT_EQ(version, 0x020fu);
  EXPECT_EQ(code32, 0x100000u);
  for (size_t i = 0; i < bz.payload_size; i += 4093) {
    ASSERT_EQ(mem_.read_obj<uint8_t>(0x100000 + i), test::bz_byte(i)) << i;
  }
  EXPECT_EQ(mem_.read_obj<uint8_t>(0x100000 + bz.payload_size - 1),
            test::bz_byte(bz.payload_size - 1));
  EXPECT_EQ(k.cmdline_max(), 2047u);
  EXPECT_EQ(k.initrd_addr_max(), 0x7fffffffu);
}

TEST_F(BzImageTest, SetupSectsZeroMeansFour) {
  FakeBzImage bz;
  bz.setup_sects = 0;
  EXPECT_EQ(load(bz).entry, 0x100200u);
  EXPECT_EQ(mem_.read_obj<uint8_t>(0x100000 + 5), test::bz_byte(5));
}

TEST_F(BzImageTest, NonRelocatableUsesPrefAddress) {
  FakeBzImage bz;
  bz.relocatable = 0;
  bz.pref_address = 0x1000000;
  bz.init_size = 0xfd3000;
  EXPECT_EQ(load(bz).end, 0x1000000u + 0xfd3000u);
}

TEST_F(BzImageTest, ShortHeaderBytesAreNotTrusted) {
  FakeBzImage bz;
  bz.version = 0x020c;
  bz.header_len_byte = 0x66;  // header ends at 0x268: kernel_info_offset is setup code
  std::vector<uint8_t> bytes = bz.bytes();
  test::put<uint32_t>(bytes, 0x268, 0xdeadbeef);
  const TempFile f(bytes);
  const LoadedKernel k = load_kernel(mem_, f.path());
  const uint32_t info = k.header->kernel_info_offset;
  EXPECT_EQ(info, 0u);
}

TEST_F(BzImageTest, Rejections) {
  FakeBzImage bad_magic;
  bad_magic.magic = 0x12345678;
  expect_image_error(bad_magic, "not a kernel");

  FakeBzImage old;
  old.version = 0x020b;
  expect_image_error(old, "older than 2.12");

  FakeBzImage no64;
  no64.xloadflags = 0x2;
  expect_image_error(no64, "XLF_KERNEL_64");

  FakeBzImage low;
  low.loadflags = 0;
  expect_image_error(low, "LOADED_HIGH");

  FakeBzImage flag;
  flag.boot_flag = 0x1234;
  expect_image_error(flag, "boot_flag");

  FakeBzImage huge_init;
  huge_init.init_size = 0xfff00000;
  expect_image_error(huge_init, "init_size");

  FakeBzImage bad_align;
  bad_align.kernel_alignment = 0x300000;
  expect_image_error(bad_align, "power of two");

  FakeBzImage short_header;
  short_header.header_len_byte = 0x20;
  expect_image_error(short_header, "too short");

  FakeBzImage tiny_payload;
  tiny_payload.payload_size = 0x100;
  expect_image_error(tiny_payload, "64-bit entry");
}

TEST_F(BzImageTest, SetupSectsPastEndOfFile) {
  std::vector<uint8_t> bytes = FakeBzImage{}.bytes();
  test::put<uint8_t>(bytes, 0x1f1, 250);  // (250 + 1) * 512 > the file's size
  const TempFile f(bytes);
  try {
    load_kernel(mem_, f.path());
    ADD_FAILURE() << "accepted";
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("past the end"), std::string::npos) << e.what();
  }
}

TEST_F(BzImageTest, KernelLargerThanRam) {
  const GuestMemory small = GuestMemory::create_anonymous(2 * layout::kMiB);
  FakeBzImage bz;
  bz.payload_size = 2 * layout::kMiB;
  const TempFile f(bz.bytes());
  EXPECT_THROW(load_kernel(small, f.path()), ImageError);
}

TEST_F(BzImageTest, TruncatedHeader) {
  std::vector<uint8_t> bytes = FakeBzImage{}.bytes();
  bytes.resize(0x250);
  const TempFile f(bytes);
  EXPECT_THROW(load_kernel(mem_, f.path()), ImageError);
}

}  // namespace
}  // namespace forkvm::x86
