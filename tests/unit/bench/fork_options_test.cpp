// `forkvm-bench fork` argument parsing.
#include "bench/fork_options.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace forkvm::bench {
namespace {

ForkBenchOptions parse(std::vector<std::string> a) { return parse_fork_options(a); }

TEST(ForkOptions, DefaultsNeedOnlyTheSnapshot) {
  const auto o = parse({"--snapshot", "/tmp/snap"});
  EXPECT_EQ(o.snapshot, "/tmp/snap");
  EXPECT_EQ(o.n, 20u);
  EXPECT_EQ(o.pool, 2u);
  EXPECT_EQ(o.live, 10u);
  EXPECT_EQ(o.max_live, 0u);
  EXPECT_FALSE(o.json);
}

TEST(ForkOptions, EveryOption) {
  const auto o = parse({"-n", "50", "--pool", "0", "--live", "3", "--max-live", "200", "--json",
                        "--snapshot", "d"});
  EXPECT_EQ(o.snapshot, "d");
  EXPECT_EQ(o.n, 50u);
  EXPECT_EQ(o.pool, 0u);
  EXPECT_EQ(o.live, 3u);
  EXPECT_EQ(o.max_live, 200u);
  EXPECT_TRUE(o.json);
}

TEST(ForkOptions, RejectsBadCommandLines) {
  const std::vector<std::vector<std::string>> bad = {
      {},                                      // no snapshot
      {"--snapshot"},                          // missing value
      {"--snapshot", ""},                      // empty dir
      {"--snapshot", "d", "-n", "0"},          // n must be >= 1
      {"--snapshot", "d", "-n", "-3"},         // not a number
      {"--snapshot", "d", "-n", "12x"},        // trailing garbage
      {"--snapshot", "d", "-n", "100001"},     // out of range
      {"--snapshot", "d", "--max-live", "0"},  // a mode of 0 children
      {"--snapshot", "d", "--pool"},           // missing value
      {"--snapshot", "d", "--frobnicate"},     // unknown
  };
  for (const auto& a : bad) {
    std::string joined;
    for (const auto& s : a) joined += s + " ";
    EXPECT_THROW(parse(a), UsageError) << joined;
  }
}

TEST(ForkOptions, ErrorsSayWhatIsWrong) {
  try {
    parse({"--snapshot", "d", "--live", "many"});
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--live"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("many"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace forkvm::bench
