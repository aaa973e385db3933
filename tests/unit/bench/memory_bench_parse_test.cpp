// `forkvm-bench memory`'s pure parts: its options and the guest workload's output line, which
// comes from the guest and must be refused when malformed.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "bench/memory_bench_parse.hpp"

namespace forkvm::bench {
namespace {

MemoryBenchOptions parse_memory(std::vector<std::string> a) {
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  return parse_memory_options(std::span<char* const>(argv.data(), argv.size()), "/images", "/tool");
}

TEST(MemoryBenchOptions, Defaults) {
  const MemoryBenchOptions o = parse_memory({});
  EXPECT_EQ(o.n, 5u);
  EXPECT_EQ(o.memory_mib, 256u);
  EXPECT_EQ(o.working_set_mib, 128u);
  EXPECT_EQ(o.accesses, 1000000u);
  EXPECT_TRUE(o.fork);
  EXPECT_FALSE(o.json);
  EXPECT_EQ(o.image_dir, "/images");
  EXPECT_EQ(o.memwalk, "/tool");
}

TEST(MemoryBenchOptions, EveryOption) {
  const MemoryBenchOptions o = parse_memory({"-k", "7", "--memory", "512", "--working-set", "300", "--accesses",
                                      "5000", "--no-fork", "--json", "--memwalk", "/x", "--timeout", "9"});
  EXPECT_EQ(o.n, 7u);
  EXPECT_EQ(o.memory_mib, 512u);
  EXPECT_EQ(o.working_set_mib, 300u);
  EXPECT_EQ(o.accesses, 5000u);
  EXPECT_FALSE(o.fork);
  EXPECT_TRUE(o.json);
  EXPECT_EQ(o.memwalk, "/x");
  EXPECT_EQ(o.timeout_s, 9);
}

TEST(MemoryBenchOptions, Refusals) {
  EXPECT_THROW(parse_memory({"-k", "0"}), std::exception);
  EXPECT_THROW(parse_memory({"--working-set", "200"}), std::exception);  // 256 MiB guest: at most 160
  EXPECT_THROW(parse_memory({"--working-set", "0"}), std::exception);
  EXPECT_THROW(parse_memory({"--memory", "64"}), std::exception);
  EXPECT_THROW(parse_memory({"--accesses", "0"}), std::exception);
  EXPECT_THROW(parse_memory({"--bogus"}), std::exception);
  EXPECT_THROW(parse_memory({"-k"}), std::exception);
}

TEST(MemwalkLine, ParsesTheWorkloadsLine) {
  const auto s = parse_memwalk_line(
      "memwalk ws_mib=128 pages=32768 accesses=1000 chase_ns=12.500 seq_ns_per_page=300.250 "
      "guest_thp=none check=abc\n");
  ASSERT_TRUE(s);
  EXPECT_DOUBLE_EQ(s->chase_ns, 12.5);
  EXPECT_DOUBLE_EQ(s->seq_ns_per_page, 300.25);
  EXPECT_EQ(s->guest_thp, "none");
}

TEST(MemwalkLine, RefusesWhatTheGuestGotWrong) {
  const std::string ok_tail = " seq_ns_per_page=1 guest_thp=none";
  EXPECT_FALSE(parse_memwalk_line("memwalk chase_ns=nan" + ok_tail));
  EXPECT_FALSE(parse_memwalk_line("memwalk chase_ns=inf" + ok_tail));
  EXPECT_FALSE(parse_memwalk_line("memwalk chase_ns=-3" + ok_tail));
  EXPECT_FALSE(parse_memwalk_line("memwalk chase_ns=0" + ok_tail));
  EXPECT_FALSE(parse_memwalk_line("memwalk chase_ns=1e12" + ok_tail));
  EXPECT_FALSE(parse_memwalk_line("memwalk chase_ns=12x" + ok_tail));
  EXPECT_FALSE(parse_memwalk_line("memwalk" + ok_tail));                        // no chase
  EXPECT_FALSE(parse_memwalk_line("memwalk xchase_ns=5" + ok_tail));            // not the key
  EXPECT_FALSE(parse_memwalk_line("other chase_ns=5" + ok_tail));               // not the tool
  EXPECT_FALSE(parse_memwalk_line("memwalk chase_ns=5 seq_ns_per_page=1 guest_thp="));
  EXPECT_FALSE(parse_memwalk_line("memwalk chase_ns=5 seq_ns_per_page=1 guest_thp=a\x01"));
  EXPECT_TRUE(parse_memwalk_line("memwalk chase_ns=5" + ok_tail));
}

}  // namespace
}  // namespace forkvm::bench
