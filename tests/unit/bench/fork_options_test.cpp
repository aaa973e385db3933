// `forkvm-bench fork` argument parsing.
#include "bench/fork_options.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace forkvm::bench {
namespace {

ForkBenchOptions parse_fork(std::vector<std::string> a) { return parse_fork_options(a); }

TEST(ForkOptions, DefaultsNeedOnlyTheSnapshot) {
  const auto o = parse_fork({"--snapshot", "/tmp/snap"});
  EXPECT_EQ(o.snapshot, "/tmp/snap");
  EXPECT_EQ(o.n, 20u);
  EXPECT_EQ(o.pool, 2u);
  EXPECT_EQ(o.live, 10u);
  EXPECT_EQ(o.max_live, 0u);
  EXPECT_FALSE(o.json);
  EXPECT_TRUE(o.premap);
  EXPECT_TRUE(o.prefault);
  EXPECT_EQ(o.first_exec, (std::vector<std::string>{"true"}));
}

TEST(ForkOptions, FirstExecIsSplitAtSpaces) {
  const auto o = parse_fork({"--snapshot", "d", "--first-exec", " python3  -c pass"});
  EXPECT_EQ(o.first_exec, (std::vector<std::string>{"python3", "-c", "pass"}));
  EXPECT_THROW(parse_fork({"--snapshot", "d", "--first-exec", "  "}), UsageError);
  EXPECT_THROW(parse_fork({"--snapshot", "d", "--first-exec"}), UsageError);
}

TEST(ForkOptions, EveryOption) {
  const auto o = parse_fork({"-n", "50", "--pool", "0", "--live", "3", "--max-live", "200", "--json",
                        "--premap", "0", "--prefault", "0", "--snapshot", "d"});
  EXPECT_EQ(o.snapshot, "d");
  EXPECT_EQ(o.n, 50u);
  EXPECT_EQ(o.pool, 0u);
  EXPECT_EQ(o.live, 3u);
  EXPECT_EQ(o.max_live, 200u);
  EXPECT_TRUE(o.json);
  EXPECT_FALSE(o.premap);
  EXPECT_FALSE(o.prefault);
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
      {"--snapshot", "d", "--premap", "yes"},  // only 0 or 1
      {"--snapshot", "d", "--prefault", "2"},  // only 0 or 1
  };
  for (const auto& a : bad) {
    std::string joined;
    for (const auto& s : a) joined += s + " ";
    EXPECT_THROW(parse_fork(a), UsageError) << joined;
  }
}

TEST(ForkOptions, SnapshotMayRepeatForTheSizeComparison) {
  const auto one = parse_fork({"--snapshot", "small"});
  EXPECT_TRUE(one.more_snapshots.empty());
  const auto two = parse_fork({"--snapshot", "small", "-n", "5", "--snapshot", "big"});
  EXPECT_EQ(two.snapshot, "small");
  ASSERT_EQ(two.more_snapshots.size(), 1u);
  EXPECT_EQ(two.more_snapshots[0], "big");
  EXPECT_THROW(parse_fork({"--snapshot", "a", "--snapshot", ""}), UsageError);
  EXPECT_THROW(parse_fork({"--snapshot", "a", "--snapshot", "b", "--max-live", "5"}), UsageError);
}

TEST(ForkRunningOptions, Defaults) {
  const std::vector<std::string> none;
  const auto o = parse_fork_running_options(none);
  EXPECT_EQ(o.n, 20u);
  EXPECT_EQ(o.depth, 5u);
  EXPECT_EQ(o.write_mib, 2u);
  EXPECT_EQ(o.vcpus, 1u);
  EXPECT_EQ(o.memory_mib, 256u);
  EXPECT_TRUE(o.image_dir.empty());
  EXPECT_FALSE(o.json);
}

TEST(ForkRunningOptions, EveryOption) {
  const std::vector<std::string> a = {"-n", "7", "--depth", "0", "--write-mib", "0", "--vcpus",
                                      "2", "--memory", "512", "--image-dir", "/img", "--json"};
  const auto o = parse_fork_running_options(a);
  EXPECT_EQ(o.n, 7u);
  EXPECT_EQ(o.depth, 0u);
  EXPECT_EQ(o.write_mib, 0u);
  EXPECT_EQ(o.vcpus, 2u);
  EXPECT_EQ(o.memory_mib, 512u);
  EXPECT_EQ(o.image_dir, "/img");
  EXPECT_TRUE(o.json);
}

TEST(ForkRunningOptions, RejectsBadCommandLines) {
  const std::vector<std::vector<std::string>> bad = {
      {"-n", "0"},
      {"--depth"},
      {"--depth", "x"},
      {"--vcpus", "0"},
      {"--memory", "32"},                                   // below 64 MiB
      {"--image-dir", ""},
      {"--snapshot", "d"},                                  // not an option of fork-running
      {"--memory", "256", "--depth", "10", "--write-mib", "13"},  // 130 MiB >= half of 256
  };
  for (const auto& a : bad) {
    std::string joined;
    for (const auto& s : a) joined += s + " ";
    EXPECT_THROW(parse_fork_running_options(a), UsageError) << joined;
  }
  const std::vector<std::string> fits = {"--memory", "256", "--depth", "10", "--write-mib", "12"};
  EXPECT_EQ(parse_fork_running_options(fits).write_mib, 12u);
}

TEST(ForkOptions, ErrorsSayWhatIsWrong) {
  try {
    parse_fork({"--snapshot", "d", "--live", "many"});
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--live"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("many"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace forkvm::bench
