#include "vmm/arch/x86_64/kernel_loader.hpp"

#include <elf.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "arch_test_util.hpp"
#include "forkvm/errors.hpp"
#include "memory/layout.hpp"

namespace forkvm::x86 {
namespace {

using test::FakeBzImage;
using test::FakeElf;
using test::TempFile;
using layout::kMiB;

class KernelLoaderTest : public testing::Test {
 protected:
  GuestMemory mem_ = GuestMemory::create_anonymous(test::kTestMemSize);
};

TEST_F(KernelLoaderTest, RejectsWhatIsNotAKernel) {
  EXPECT_THROW(load_kernel(mem_, "/nonexistent/vmlinux"), ImageError);
  EXPECT_THROW(load_kernel(mem_, "/"), ImageError);
  const TempFile empty({});
  EXPECT_THROW(load_kernel(mem_, empty.path()), ImageError);
  const TempFile text(std::vector<uint8_t>(4096, 'x'));
  try {
    load_kernel(mem_, text.path());
    ADD_FAILURE() << "accepted a text file";
  } catch (const ImageError& e) {
    EXPECT_EQ(e.path(), text.path());
    EXPECT_NE(std::string(e.what()).find("not a kernel"), std::string::npos) << e.what();
  }
}

TEST_F(KernelLoaderTest, InitrdGoesPageAlignedToTheTopOfLowRam) {
  const TempFile kernel(FakeBzImage{}.bytes());
  const LoadedKernel k = load_kernel(mem_, kernel.path());
  std::vector<uint8_t> data(10000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i ^ 0x5a);
  const TempFile initrd(data);
  const LoadedInitrd r = load_initrd(mem_, initrd.path(), k);
  EXPECT_EQ(r.size, data.size());
  EXPECT_EQ(r.gpa % layout::kPageSize, 0u);
  EXPECT_EQ(r.gpa, (test::kTestMemSize - data.size()) & ~0xfffull);
  EXPECT_GE(r.gpa, k.end);
  std::vector<uint8_t> back(data.size());
  mem_.read(r.gpa, back);
  EXPECT_EQ(back, data);
}

TEST_F(KernelLoaderTest, InitrdRespectsInitrdAddrMax) {
  FakeBzImage bz;
  bz.initrd_addr_max = 64 * kMiB - 1;
  const TempFile kernel(bz.bytes());
  const LoadedKernel k = load_kernel(mem_, kernel.path());
  const TempFile initrd(std::vector<uint8_t>(5000, 1));
  const LoadedInitrd r = load_initrd(mem_, initrd.path(), k);
  EXPECT_LE(r.gpa + r.size - 1, 64 * kMiB - 1);
  EXPECT_EQ(r.gpa, 64 * kMiB - 2 * layout::kPageSize);
}

TEST_F(KernelLoaderTest, InitrdThatDoesNotFitOrIsEmpty) {
  // The kernel needs [1 MiB, 10 MiB); initrd_addr_max leaves 8 KiB above that.
  FakeBzImage bz;
  bz.initrd_addr_max = 10 * kMiB + 2 * layout::kPageSize - 1;
  const TempFile kernel(bz.bytes());
  const LoadedKernel k = load_kernel(mem_, kernel.path());
  ASSERT_EQ(k.end, 10 * kMiB);
  const TempFile fits(std::vector<uint8_t>(2 * layout::kPageSize, 1));
  EXPECT_EQ(load_initrd(mem_, fits.path(), k).gpa, 10 * kMiB);
  const TempFile big(std::vector<uint8_t>(2 * layout::kPageSize + 1, 1));
  EXPECT_THROW(load_initrd(mem_, big.path(), k), ImageError);
  const TempFile empty({});
  EXPECT_THROW(load_initrd(mem_, empty.path(), k), ImageError);
  EXPECT_THROW(load_initrd(mem_, "/nonexistent/initrd", k), ImageError);
}

TEST_F(KernelLoaderTest, CmdlineWrittenWithNul) {
  const TempFile kernel(FakeBzImage{}.bytes());
  const LoadedKernel k = load_kernel(mem_, kernel.path());
  mem_.write_obj<uint8_t>(layout::kCmdlineStart + 20, 0x77);
  EXPECT_EQ(write_cmdline(mem_, "console=ttyS0 quiet", k), 20u);
  char back[20];
  mem_.read(layout::kCmdlineStart, {reinterpret_cast<uint8_t*>(back), sizeof back});
  EXPECT_STREQ(back, "console=ttyS0 quiet");
}

TEST_F(KernelLoaderTest, CmdlineLimits) {
  FakeBzImage bz;
  bz.cmdline_size = 100;
  const TempFile kernel(bz.bytes());
  const LoadedKernel k = load_kernel(mem_, kernel.path());
  EXPECT_EQ(k.cmdline_max(), 100u);
  EXPECT_NO_THROW(write_cmdline(mem_, std::string(100, 'a'), k));
  EXPECT_THROW(write_cmdline(mem_, std::string(101, 'a'), k), ConfigError);
  EXPECT_THROW(write_cmdline(mem_, std::string("a\0b", 3), k), ConfigError);

  // A kernel allowing more than forkvm reserves is capped at kCmdlineMaxSize - 1.
  FakeBzImage generous;
  generous.cmdline_size = 0x100000;
  const TempFile kernel2(generous.bytes());
  const LoadedKernel k2 = load_kernel(mem_, kernel2.path());
  EXPECT_EQ(k2.cmdline_max(), layout::kCmdlineMaxSize - 1);
  EXPECT_THROW(write_cmdline(mem_, std::string(layout::kCmdlineMaxSize, 'a'), k2), ConfigError);

  // A vmlinux has no header: COMMAND_LINE_SIZE - 1.
  const TempFile elf(FakeElf{}.bytes());
  const LoadedKernel k3 = load_kernel(mem_, elf.path());
  EXPECT_NO_THROW(write_cmdline(mem_, std::string(2047, 'a'), k3));
  EXPECT_THROW(write_cmdline(mem_, std::string(2048, 'a'), k3), ConfigError);
}

/// The real guest kernel built by tools/guest-kernel/build.sh, when FORKVM_TEST_KERNEL_DIR
/// points at its output directory.
std::string kernel_dir() {
  const char* dir = std::getenv("FORKVM_TEST_KERNEL_DIR");
  return dir != nullptr ? dir : "";
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

TEST(RealKernel, LoadsBzImage) {
  const std::string path = kernel_dir() + "/bzImage";
  if (kernel_dir().empty() || !exists(path)) {
    GTEST_SKIP() << "set FORKVM_TEST_KERNEL_DIR to the directory holding bzImage (the output "
                    "of tools/guest-kernel/build.sh)";
  }
  const GuestMemory mem = GuestMemory::create_anonymous(256 * kMiB);
  const LoadedKernel k = load_kernel(mem, path);
  EXPECT_EQ(k.format, KernelFormat::BzImage);
  EXPECT_EQ(k.entry, 0x100200u);
  ASSERT_TRUE(k.header.has_value());
  const uint16_t version = k.header->version;
  const uint32_t init_size = k.header->init_size;
  EXPECT_GE(version, 0x020cu);
  EXPECT_GT(init_size, 0u);
  EXPECT_GT(k.end, k.start);
  EXPECT_EQ(k.cmdline_max(), 2047u);  // COMMAND_LINE_SIZE - 1 in 6.1
}

TEST(RealKernel, LoadsVmlinuxAtItsPhysicalEntry) {
  const std::string path = kernel_dir() + "/vmlinux";
  if (kernel_dir().empty() || !exists(path)) {
    GTEST_SKIP() << "set FORKVM_TEST_KERNEL_DIR to the directory holding vmlinux (the output "
                    "of tools/guest-kernel/build.sh)";
  }
  const GuestMemory mem = GuestMemory::create_anonymous(256 * kMiB);
  const LoadedKernel k = load_kernel(mem, path);
  EXPECT_EQ(k.format, KernelFormat::Elf);
  // e_entry of an x86-64 vmlinux is phys_startup_64 (vmlinux.lds.S): physical, not
  // 0xffffffff8...; with CONFIG_PHYSICAL_START = 16 MiB it is 0x1000000.
  std::ifstream in(path, std::ios::binary);
  Elf64_Ehdr eh{};
  in.read(reinterpret_cast<char*>(&eh), sizeof eh);
  EXPECT_EQ(k.entry, eh.e_entry);
  EXPECT_LT(eh.e_entry, 1ull << 32);
  EXPECT_GE(k.start, layout::kHimemStart);
  // The entry bytes in guest memory are the file's startup_64.
  Elf64_Phdr ph{};
  for (int i = 0; i < eh.e_phnum; ++i) {
    in.seekg(static_cast<std::streamoff>(eh.e_phoff + i * sizeof ph));
    in.read(reinterpret_cast<char*>(&ph), sizeof ph);
    if (ph.p_type == PT_LOAD && eh.e_entry >= ph.p_paddr && eh.e_entry < ph.p_paddr + ph.p_filesz) {
      break;
    }
  }
  uint8_t file_bytes[16];
  in.seekg(static_cast<std::streamoff>(ph.p_offset + (eh.e_entry - ph.p_paddr)));
  in.read(reinterpret_cast<char*>(file_bytes), sizeof file_bytes);
  uint8_t guest_bytes[16];
  mem.read(k.entry, guest_bytes);
  EXPECT_EQ(std::memcmp(file_bytes, guest_bytes, sizeof file_bytes), 0);
}

}  // namespace
}  // namespace forkvm::x86
