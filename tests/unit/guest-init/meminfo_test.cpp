#include "guest-init/meminfo.hpp"

#include <gtest/gtest.h>

namespace forkvm {
namespace {

constexpr std::string_view kMeminfo =
    "MemTotal:         239640 kB\n"
    "MemFree:          221404 kB\n"
    "MemAvailable:     214724 kB\n"
    "HugePages_Total:       0\n"
    "Hugepagesize:       2048 kB\n";

TEST(Meminfo, ReadsFields) {
  EXPECT_EQ(meminfo_kib(kMeminfo, "MemTotal"), 239640u);
  EXPECT_EQ(meminfo_kib(kMeminfo, "MemAvailable"), 214724u);
  EXPECT_EQ(meminfo_kib(kMeminfo, "Hugepagesize"), 2048u);
}

TEST(Meminfo, MatchesWholeFieldNames) {
  EXPECT_FALSE(meminfo_kib(kMeminfo, "Mem").has_value());
  EXPECT_FALSE(meminfo_kib(kMeminfo, "Total").has_value());
  EXPECT_FALSE(meminfo_kib(kMeminfo, "SwapTotal").has_value());
}

TEST(Meminfo, RejectsValuesWithoutKb) {
  EXPECT_FALSE(meminfo_kib(kMeminfo, "HugePages_Total").has_value());
  EXPECT_FALSE(meminfo_kib("MemTotal: 12 MB\n", "MemTotal").has_value());
}

TEST(Meminfo, RejectsMalformedNumbers) {
  EXPECT_FALSE(meminfo_kib("MemTotal:  kB\n", "MemTotal").has_value());
  EXPECT_FALSE(meminfo_kib("MemTotal: 12x kB\n", "MemTotal").has_value());
  EXPECT_FALSE(meminfo_kib("MemTotal: 99999999999999999999999 kB\n", "MemTotal").has_value());
  EXPECT_FALSE(meminfo_kib("", "MemTotal").has_value());
}

TEST(Meminfo, LastLineWithoutNewline) {
  EXPECT_EQ(meminfo_kib("A: 1 kB\nMemTotal: 18446744073709551615 kB", "MemTotal"),
            UINT64_MAX);
}

}  // namespace
}  // namespace forkvm
