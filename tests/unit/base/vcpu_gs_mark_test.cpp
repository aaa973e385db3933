// The lab's GS-base mark on vCPU threads (base/vcpu_gs_mark.hpp): what it accepts, that a thread
// that applies it has that GS base, and that a GuestError names it.
#include "base/vcpu_gs_mark.hpp"

#include <asm/prctl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "forkvm/errors.hpp"

namespace forkvm {
namespace {

TEST(VcpuGsMark, ParsesAPageAlignedUserAddressInHex) {
  EXPECT_EQ(parse_vcpu_gs_mark("0x6d61726b0000"), 0x6d61726b0000u);
  EXPECT_EQ(parse_vcpu_gs_mark("0X1000"), 0x1000u);
  EXPECT_EQ(parse_vcpu_gs_mark("0x7ffffffff000"), 0x7ffffffff000u);
  EXPECT_EQ(parse_vcpu_gs_mark("0xABCDE000"), 0xabcde000u);
}

TEST(VcpuGsMark, RefusesAnythingElse) {
  for (const char* bad : {"", "0", "0x", "0x0", "1000", "x1000", "0x1001", "0x800000000000",
                          "0xffffffff8000", "0x1000 ", " 0x1000", "0x10g0", "0x-1000",
                          "0x0000000000001000", "0xffffffffffff"}) {
    EXPECT_FALSE(parse_vcpu_gs_mark(bad)) << "'" << bad << "'";
  }
  EXPECT_FALSE(parse_vcpu_gs_mark(nullptr));
}

uint64_t own_gs_base() {
  unsigned long base = 0;
  if (syscall(SYS_arch_prctl, ARCH_GET_GS, &base) != 0) return ~0ull;
  return base;
}

// In a fresh process (the mark is read once per process): a thread that applies the mark from
// the environment has it as its GS base, and the thread beside it keeps its own.
TEST(VcpuGsMarkDeathTest, AThreadThatAppliesItHasItAsItsGsBase) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv(kVcpuGsMarkVariable, "0x6d61726b0000", 1);
        const uint64_t before = own_gs_base();
        uint64_t inside = 0;
        bool applied = false;
        std::thread t([&] {
          applied = apply_vcpu_gs_mark();
          inside = own_gs_base();
        });
        t.join();
        std::fprintf(stderr, "applied %d inside %#llx main %#llx\n", applied ? 1 : 0,
                     static_cast<unsigned long long>(inside),
                     static_cast<unsigned long long>(own_gs_base()));
        _exit(applied && inside == 0x6d61726b0000u && own_gs_base() == before ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "applied 1 inside 0x6d61726b0000");
}

TEST(VcpuGsMarkDeathTest, AnUnusableMarkIsSaidAndIgnored) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv(kVcpuGsMarkVariable, "0x1234", 1);
        _exit(!vcpu_gs_mark() && !apply_vcpu_gs_mark() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "FORKVM_DEBUG_VCPU_GS_BASE='0x1234' ignored");
}

}  // namespace
}  // namespace forkvm

namespace forkvm {
namespace {

// A guest's double-fault oops as Linux prints it, with the mark in GS and the mark plus a
// per-CPU offset in CR2: a GuestError about it says where the value came from.
TEST(VcpuGsMarkDeathTest, AGuestErrorNamesTheMarkWhenTheConsoleShowsIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv(kVcpuGsMarkVariable, "0x6d61726b0000", 1);
        const GuestError shown("the VM stopped (reset)",
                               "traps: PANIC: double fault, error_code: 0x0\n"
                               "FS:  00007f3a1c2d8740(0000) GS:00006d61726b0000(0000) "
                               "knlGS:0000000000000000\nCR2: 00006d61726cac00\n");
        const GuestError plain("the VM stopped (reset)",
                               "GS:0000000000000000(0000) knlGS:0000000000000000\n");
        const std::string note = vcpu_gs_mark_note("CR2: 00006d61726cac00");
        std::fprintf(stderr, "%s\n", shown.what());
        const bool named = std::string(shown.what()).find("vCPU threads wear") !=
                           std::string::npos;
        const bool quiet = std::string(plain.what()).find("vCPU threads wear") == std::string::npos;
        _exit(named && quiet && !note.empty() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "a value near 0x6d61726b0000");
}

TEST(VcpuGsMarkDeathTest, WithoutAMarkNothingIsNamed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        unsetenv(kVcpuGsMarkVariable);
        const GuestError e("the VM stopped (reset)", "GS:00006d61726b0000(0000)\n");
        const bool quiet = std::string(e.what()).find("vCPU threads wear") == std::string::npos;
        _exit(quiet && vcpu_gs_mark_note("GS:00006d61726b0000").empty() && !apply_vcpu_gs_mark() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace forkvm
