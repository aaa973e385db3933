#include "guest-init/cpu_list.hpp"

#include <gtest/gtest.h>

namespace forkvm {
namespace {

using Cpus = std::vector<uint32_t>;

TEST(CpuList, SingleAndRanges) {
  EXPECT_EQ(parse_cpu_list("0\n"), (Cpus{0}));
  EXPECT_EQ(parse_cpu_list("0-3,5"), (Cpus{0, 1, 2, 3, 5}));
  EXPECT_EQ(parse_cpu_list("0-1,4-5,7\n"), (Cpus{0, 1, 4, 5, 7}));
  EXPECT_EQ(count_cpu_list("0-63\n"), 64u);
  EXPECT_EQ(count_cpu_list("0-3,5"), 5u);
}

TEST(CpuList, EmptyListNamesNoCpu) {
  EXPECT_EQ(count_cpu_list("\n"), 0u);
  EXPECT_EQ(count_cpu_list(""), 0u);
}

TEST(CpuList, OverlapsAndDisorderAreCountedOnce) {
  EXPECT_EQ(parse_cpu_list("5,0-2,1-3"), (Cpus{0, 1, 2, 3, 5}));
}

TEST(CpuList, RejectsMalformed) {
  for (const char* bad : {"a", "1-", "-1", "3-1", "1,,2", "1,", ",1", "1 2", "0-3:2", "1--2",
                          "65536", "0-65536", "999999"}) {
    EXPECT_FALSE(parse_cpu_list(bad).has_value()) << bad;
    EXPECT_FALSE(count_cpu_list(bad).has_value()) << bad;
  }
}

TEST(CpuList, AcceptsTheLargestId) {
  EXPECT_EQ(count_cpu_list("65535"), 1u);
}

}  // namespace
}  // namespace forkvm
