// ELF vmlinux loading through load_kernel (elf_kernel.cpp has no public entry of its own).
#include <gtest/gtest.h>

#include "arch_test_util.hpp"
#include "forkvm/errors.hpp"
#include "memory/layout.hpp"
#include "vmm/arch/x86_64/kernel_loader.hpp"

namespace forkvm::x86 {
namespace {

using test::FakeElf;
using test::TempFile;

class ElfKernelTest : public testing::Test {
 protected:
  LoadedKernel load(const FakeElf& elf) {
    const TempFile f(elf.bytes());
    return load_kernel(mem_, f.path());
  }
  void expect_image_error(const FakeElf& elf, const std::string& needle) {
    try {
      load(elf);
      ADD_FAILURE() << "accepted an ELF that should fail with: " << needle;
    } catch (const ImageError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  GuestMemory mem_ = GuestMemory::create_anonymous(test::kTestMemSize);
};

TEST_F(ElfKernelTest, LoadsSegmentAtPaddrAndZeroesBss) {
  FakeElf elf;
  // Stale bytes where the bss goes must be cleared.
  mem_.write_obj<uint64_t>(elf.paddr + elf.memsz - 8, ~0ull);
  const LoadedKernel k = load(elf);
  EXPECT_EQ(k.format, KernelFormat::Elf);
  EXPECT_EQ(k.entry, 0x1000000u);
  EXPECT_EQ(k.start, 0x1000000u);
  EXPECT_EQ(k.end, 0x1005000u);
  EXPECT_FALSE(k.header.has_value());
  for (uint64_t i = 0; i < elf.filesz; ++i) {
    ASSERT_EQ(mem_.read_obj<uint8_t>(elf.paddr + i), test::elf_byte(i)) << i;
  }
  for (uint64_t i = elf.filesz; i < elf.memsz; ++i) {
    ASSERT_EQ(mem_.read_obj<uint8_t>(elf.paddr + i), 0u) << i;
  }
  EXPECT_EQ(k.cmdline_max(), 2047u);
  EXPECT_EQ(k.initrd_addr_max(), 0x37ffffffu);
}

TEST_F(ElfKernelTest, VirtualEntryIsTranslated) {
  FakeElf elf;
  elf.entry = elf.vaddr + 0x40;
  EXPECT_EQ(load(elf).entry, elf.paddr + 0x40);
}

TEST_F(ElfKernelTest, Rejections) {
  FakeElf outside;
  outside.paddr = test::kTestMemSize - 0x1000;  // memsz 0x5000 runs past RAM
  expect_image_error(outside, "not inside guest RAM");

  FakeElf below;
  below.paddr = 0x8000;  // would overwrite the zero page and page tables
  below.entry = 0x8000;
  expect_image_error(below, "not inside guest RAM above 1 MiB");

  FakeElf wrap;
  wrap.paddr = ~0ull - 0x100;
  expect_image_error(wrap, "not inside guest RAM");

  FakeElf bigger_file;
  bigger_file.filesz = 0x6000;
  bigger_file.file_size = 0x7000;
  expect_image_error(bigger_file, "p_filesz");

  FakeElf past_eof;
  past_eof.file_size = 0x2000;  // segment is [0x1000, 0x4000)
  expect_image_error(past_eof, "past the end of the file");

  FakeElf elf32;
  elf32.elf_class = ELFCLASS32;
  expect_image_error(elf32, "ELF64");

  FakeElf arm;
  arm.machine = EM_AARCH64;
  expect_image_error(arm, "x86-64");

  FakeElf dyn;
  dyn.type = ET_DYN;
  expect_image_error(dyn, "ET_EXEC");

  FakeElf entry;
  entry.entry = 0x5000000;
  expect_image_error(entry, "entry point");

  FakeElf headers_cut;
  headers_cut.file_size = 0x60;  // program headers cut off
  expect_image_error(headers_cut, "truncated");
}

TEST_F(ElfKernelTest, NothingWrittenWhenRejected) {
  FakeElf elf;
  elf.entry = 0x5000000;
  EXPECT_THROW(load(elf), ImageError);
  EXPECT_EQ(mem_.read_obj<uint64_t>(elf.paddr), 0u);
}

}  // namespace
}  // namespace forkvm::x86
