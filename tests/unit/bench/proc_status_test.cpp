// /proc/self/status and /proc/meminfo parsing, the per-child memory arithmetic, counting open
// file descriptors and raising RLIMIT_NOFILE.
#include "bench/proc_status.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "bench/memory_math.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::bench {
namespace {

constexpr const char* kStatus =
    "Name:\tforkvm-bench\n"
    "Umask:\t0022\n"
    "State:\tS (sleeping)\n"
    "Threads:\t7\n"
    "VmPeak:\t  812344 kB\n"
    "VmRSS:\t   20480 kB\n"
    "RssAnon:\t   10240 kB\n"
    "RssFile:\t    8192 kB\n"
    "RssShmem:\t    2048 kB\n"
    "VmPTE:\t     120 kB\n"
    "VmSwap:\t       0 kB\n";

constexpr const char* kMeminfo =
    "MemTotal:        2030000 kB\n"
    "MemFree:         1500000 kB\n"
    "MemAvailable:    1600000 kB\n"
    "PageTables:         4000 kB\n"
    "SecPageTables:       256 kB\n"
    "HugePages_Total:       0\n";

TEST(ProcStatus, ParsesKbLinesAsBytes) {
  const auto m = parse_kb_lines(kStatus);
  EXPECT_EQ(m.at("VmRSS"), 20480u * 1024);
  EXPECT_EQ(m.at("VmPTE"), 120u * 1024);
  EXPECT_EQ(m.count("Threads"), 0u);  // a count, not kB
  EXPECT_EQ(m.count("Name"), 0u);
  EXPECT_EQ(m.count("State"), 0u);
}

TEST(ProcStatus, SkipsMalformedLinesAndKeepsTheLastRepeat) {
  const auto m = parse_kb_lines(
      "A: 12 kB\n"
      "A: 13 kB\n"
      ": 5 kB\n"            // no name
      "B: kB\n"             // no number
      "C: 7 MB\n"           // wrong unit
      "D: 9 kB extra\n"     // trailing text
      "E 4 kB\n"            // no colon
      "F: 1234567890123456 kB\n"  // too many digits
      "G:\t\t 3 kB  \r\n"   // odd whitespace
      "H: 0 kB");           // no final newline
  EXPECT_EQ(m.at("A"), 13u * 1024);
  EXPECT_EQ(m.count(""), 0u);
  EXPECT_EQ(m.count("B"), 0u);
  EXPECT_EQ(m.count("C"), 0u);
  EXPECT_EQ(m.count("D"), 0u);
  EXPECT_EQ(m.count("E 4 kB"), 0u);
  EXPECT_EQ(m.count("F"), 0u);
  EXPECT_EQ(m.at("G"), 3u * 1024);
  EXPECT_EQ(m.at("H"), 0u);
}

TEST(ProcStatus, CountersFromBothFiles) {
  const auto c = memory_counters_from(kStatus, kMeminfo);
  EXPECT_EQ(c.rss_anon, 10240u * 1024);
  EXPECT_EQ(c.rss_file, 8192u * 1024);
  EXPECT_EQ(c.rss_shmem, 2048u * 1024);
  EXPECT_EQ(c.vm_pte, 120u * 1024);
  EXPECT_EQ(c.mem_available, 1600000u * 1024);
  EXPECT_EQ(c.sec_page_tables, 256u * 1024);
  // A kernel before 6.1 has no SecPageTables.
  const auto old = memory_counters_from(kStatus, "MemAvailable: 5 kB\n");
  EXPECT_FALSE(old.sec_page_tables.has_value());
}

TEST(ProcStatus, ReadsThisProcess) {
  const auto c = read_memory_counters();
  ASSERT_TRUE(c.vm_rss.has_value());
  EXPECT_GT(*c.vm_rss, 0u);
  EXPECT_TRUE(c.rss_anon.has_value());
  EXPECT_TRUE(c.vm_pte.has_value());
  EXPECT_TRUE(c.mem_available.has_value());
}

TEST(MemoryMath, SpreadsDeltasOverChildren) {
  MemoryCounters b, a;
  b.rss_anon = 100 << 20;
  a.rss_anon = 140 << 20;
  b.vm_pte = 1 << 20;
  a.vm_pte = 1 << 20 | 400 << 10;
  b.mem_available = 1000 << 20;
  a.mem_available = 900 << 20;
  const PerChildMemory m = per_child(b, a, 4);
  EXPECT_DOUBLE_EQ(*m.rss_anon, 10.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(*m.vm_pte, 100.0 * 1024);
  EXPECT_DOUBLE_EQ(*m.mem_available_drop, 25.0 * (1 << 20));
  EXPECT_FALSE(m.sec_page_tables.has_value());  // unknown on both sides
  EXPECT_FALSE(m.rss_file.has_value());
  // Without SecPageTables the unshared cost is RssAnon + VmPTE.
  EXPECT_DOUBLE_EQ(*unshared_cost(m), 10.0 * (1 << 20) + 100.0 * 1024);
  EXPECT_FALSE(per_child(b, a, 0).rss_anon.has_value());
  EXPECT_FALSE(unshared_cost(PerChildMemory{}).has_value());
}

TEST(MemoryMath, Extrapolates) {
  const double mib = 1 << 20;
  const Extrapolation e = extrapolate(8 * mib, 1000, 256 * mib, 24 * 1024 * mib);
  EXPECT_DOUBLE_EQ(e.total_bytes, 256 * mib + 8000 * mib);
  EXPECT_DOUBLE_EQ(e.children_fit, (24 * 1024 - 256) / 8.0);
  EXPECT_DOUBLE_EQ(extrapolate(0, 1000, 1, 2).children_fit, 0);
}

TEST(ProcStatus, CountsDirectoryEntries) {
  const test::TempDir tmp("forkvm-count");
  const std::string dir = tmp.path().string();
  EXPECT_EQ(count_entries(dir), 0u);
  for (const char* name : {"a", "b", "c"}) {
    std::ofstream(std::string(dir) + "/" + name) << "x";
  }
  EXPECT_EQ(count_entries(dir), 3u);
  EXPECT_THROW(count_entries(std::string(dir) + "/missing"), std::runtime_error);
}

TEST(ProcStatus, CountsThisProcessFileDescriptors) {
  const size_t before = count_entries();
  const int a = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int b = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_EQ(count_entries(), before + 2);
  ::close(a);
  ::close(b);
  EXPECT_EQ(count_entries(), before);
}

TEST(ProcStatus, RaisesTheSoftFdLimitToTheHardOne) {
  rlimit start{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &start), 0);
  const FdLimits l = raise_fd_limit();
  EXPECT_EQ(l.soft_before, start.rlim_cur);
  EXPECT_EQ(l.hard, start.rlim_max);
  EXPECT_GE(l.soft, l.soft_before);  // never lowered
  if (start.rlim_max != RLIM_INFINITY) {
    EXPECT_EQ(l.soft, l.hard);
  }
  rlimit now{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, l.soft);
  // A second call finds nothing to raise.
  const FdLimits again = raise_fd_limit();
  EXPECT_EQ(again.soft_before, l.soft);
  EXPECT_EQ(again.soft, l.soft);
}

}  // namespace
}  // namespace forkvm::bench
