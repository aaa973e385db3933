#include "vmm/arch/x86_64/boot_params.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "arch_test_util.hpp"
#include "forkvm/errors.hpp"
#include "memory/layout.hpp"

namespace forkvm::x86 {
namespace {

using test::fake_regions;
constexpr uint64_t kGiB = layout::kGiB;
using layout::kMiB;

/// Reads a little-endian value at a byte offset of the zero page, independently of the struct.
template <typename T>
T at(const BootParams& p, size_t offset) {
  T v;
  std::memcpy(&v, reinterpret_cast<const uint8_t*>(&p) + offset, sizeof v);
  return v;
}

void expect_entry(const E820Entry& e, uint64_t addr, uint64_t size, uint32_t type) {
  const uint64_t a = e.addr, s = e.size;
  const uint32_t t = e.type;
  EXPECT_EQ(a, addr);
  EXPECT_EQ(s, size);
  EXPECT_EQ(t, type);
}

TEST(E820, Map128MiB) {
  const auto map = build_e820(fake_regions(128 * kMiB));
  ASSERT_EQ(map.size(), 3u);
  expect_entry(map[0], 0, 0x9fc00, kE820Ram);
  expect_entry(map[1], 0x9fc00, 0xe0000 - 0x9fc00, kE820Reserved);
  expect_entry(map[2], 0x100000, 128 * kMiB - 0x100000, kE820Ram);
}

TEST(E820, Map3GiBEndsAtTheHole) {
  const auto map = build_e820(fake_regions(3 * kGiB));
  ASSERT_EQ(map.size(), 3u);
  expect_entry(map[2], 0x100000, 3 * kGiB - 0x100000, kE820Ram);
}

TEST(E820, MapAbove4GiBAddsTheHighRegion) {
  const auto map = build_e820(fake_regions(5 * kGiB));
  ASSERT_EQ(map.size(), 4u);
  expect_entry(map[2], 0x100000, 3 * kGiB - 0x100000, kE820Ram);
  expect_entry(map[3], 4 * kGiB, 2 * kGiB, kE820Ram);
}

TEST(E820, RejectsRamNotStartingAtZeroOrTooSmall) {
  std::vector<GuestMemory::Region> none;
  EXPECT_THROW(build_e820(none), ConfigError);
  std::vector<GuestMemory::Region> high{{4 * kGiB, kGiB, nullptr}};
  EXPECT_THROW(build_e820(high), ConfigError);
  EXPECT_THROW(build_e820(fake_regions(kMiB)), ConfigError);
}

TEST(BootParams, OffsetsMatchTheBootProtocol) {
  BootParams p{};
  p.hdr.cmd_line_ptr = 0x11223344;
  p.hdr.version = 0x020f;
  p.e820_entries = 7;
  p.e820_table[1].addr = 0xabcdef;
  EXPECT_EQ(at<uint32_t>(p, 0x228), 0x11223344u);
  EXPECT_EQ(at<uint16_t>(p, 0x206), 0x020fu);
  EXPECT_EQ(at<uint8_t>(p, 0x1e8), 7u);
  EXPECT_EQ(at<uint64_t>(p, 0x2d0 + 20), 0xabcdefu);
}

TEST(BootParams, SynthesizedHeaderForElfKernels) {
  ZeroPageConfig cfg;
  cfg.cmdline_size = 12;
  cfg.initrd_gpa = 0x7000000;
  cfg.initrd_size = 0x12345;
  const BootParams p = build_boot_params(cfg, fake_regions(128 * kMiB));
  EXPECT_EQ(at<uint16_t>(p, 0x1fe), 0xaa55u);         // boot_flag
  EXPECT_EQ(at<uint32_t>(p, 0x202), 0x53726448u);     // "HdrS"
  EXPECT_EQ(at<uint8_t>(p, 0x210), 0xffu);            // type_of_loader
  EXPECT_EQ(at<uint8_t>(p, 0x211), kLoadedHigh | kCanUseHeap);
  EXPECT_EQ(at<uint16_t>(p, 0x224), 0xfe00u);         // heap_end_ptr
  EXPECT_EQ(at<uint32_t>(p, 0x228), layout::kCmdlineStart);
  EXPECT_EQ(at<uint32_t>(p, 0x238), 12u);             // cmdline_size
  EXPECT_EQ(at<uint32_t>(p, 0x218), 0x7000000u);      // ramdisk_image
  EXPECT_EQ(at<uint32_t>(p, 0x21c), 0x12345u);        // ramdisk_size
  EXPECT_EQ(at<uint32_t>(p, 0x230), 16u << 20);       // kernel_alignment
  EXPECT_EQ(at<uint8_t>(p, 0x1e8), 3u);               // e820_entries
  EXPECT_EQ(at<uint64_t>(p, 0x2d0 + 2 * 20), 0x100000u);
  EXPECT_EQ(at<uint8_t>(p, 0x1ef), 0u);               // sentinel
}

TEST(BootParams, KeepsTheKernelsHeader) {
  SetupHeader hdr{};
  hdr.header = kHdrSMagic;
  hdr.boot_flag = kBootFlagMagic;
  hdr.version = 0x020f;
  hdr.kernel_alignment = 0x200000;
  hdr.init_size = 0x1234000;
  hdr.type_of_loader = 0;
  ZeroPageConfig cfg;
  cfg.kernel_header = hdr;
  cfg.cmdline_size = 1;
  const BootParams p = build_boot_params(cfg, fake_regions(128 * kMiB));
  EXPECT_EQ(at<uint16_t>(p, 0x206), 0x020fu);
  EXPECT_EQ(at<uint32_t>(p, 0x230), 0x200000u);
  EXPECT_EQ(at<uint32_t>(p, 0x260), 0x1234000u);
  EXPECT_EQ(at<uint8_t>(p, 0x210), 0xffu);
}

TEST(BootParams, WrittenAtTheZeroPage) {
  const GuestMemory mem = GuestMemory::create_anonymous(test::kTestMemSize);
  const BootParams p = build_boot_params(ZeroPageConfig{}, mem.regions());
  write_boot_params(mem, p);
  EXPECT_EQ(mem.read_obj<uint32_t>(layout::kZeroPageStart + 0x202), kHdrSMagic);
  EXPECT_EQ(mem.read_obj<uint8_t>(layout::kZeroPageStart + 0x1e8), 3u);
}

}  // namespace
}  // namespace forkvm::x86
