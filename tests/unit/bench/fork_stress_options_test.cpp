// `forkvm-bench fork-stress` options: defaults (500 forks on every path), --paths lists, and
// the usage errors.
#include "bench/fork_stress_options.hpp"

#include <gtest/gtest.h>

#include "bench/fork_options.hpp"

namespace forkvm::bench {
namespace {

ForkStressOptions parse_stress(std::vector<std::string> a) { return parse_fork_stress_options(a); }

TEST(ForkStressOptions, DefaultsCoverEveryPathWith500Forks) {
  const auto o = parse_stress({});
  EXPECT_EQ(o.n, 500u);
  EXPECT_EQ(o.paths, (std::vector<StressPath>{StressPath::kTemplate, StressPath::kPool,
                                               StressPath::kChain, StressPath::kSnapshot}));
  EXPECT_EQ(o.live, 4u);
  EXPECT_EQ(o.depth, 5u);
  EXPECT_FALSE(o.trace);
}

TEST(ForkStressOptions, ParsesEveryOption) {
  const auto o = parse_stress({"-n", "20", "--paths", "chain,template", "--live", "2", "--depth", "3",
                        "--pool", "1", "--stop-after", "9", "--vcpus", "2", "--memory", "128",
                        "--image-dir", "/img", "--out", "/o", "--trace", "--json"});
  EXPECT_EQ(o.n, 20u);
  EXPECT_EQ(o.paths, (std::vector<StressPath>{StressPath::kChain, StressPath::kTemplate}));
  EXPECT_EQ(o.live, 2u);
  EXPECT_EQ(o.depth, 3u);
  EXPECT_EQ(o.pool, 1u);
  EXPECT_EQ(o.stop_after, 9u);
  EXPECT_EQ(o.vcpus, 2u);
  EXPECT_EQ(o.memory_mib, 128u);
  EXPECT_EQ(o.image_dir, "/img");
  EXPECT_EQ(o.out_dir, "/o");
  EXPECT_TRUE(o.trace);
  EXPECT_TRUE(o.json);
  EXPECT_STREQ(to_string(StressPath::kSnapshot), "snapshot");
}

TEST(ForkStressOptions, FreshPathsAreNamedButNotDefaults) {
  const auto d = parse_stress({});
  EXPECT_EQ(d.per_image, 3u);
  EXPECT_EQ(d.refork, 10u);
  const auto o = parse_stress({"--paths", "fresh-snapshot,fresh-template", "--per-image", "2", "--refork", "0"});
  EXPECT_EQ(o.paths, (std::vector<StressPath>{StressPath::kFreshSnapshot, StressPath::kFreshTemplate}));
  EXPECT_EQ(o.per_image, 2u);
  EXPECT_EQ(o.refork, 0u);
  EXPECT_STREQ(to_string(StressPath::kFreshTemplate), "fresh-template");
  EXPECT_THROW(parse_stress({"--per-image", "0"}), UsageError);
}

TEST(ForkStressOptions, RejectsBadInput) {
  EXPECT_THROW(parse_stress({"-n", "0"}), UsageError);
  EXPECT_THROW(parse_stress({"-n", "x"}), UsageError);
  EXPECT_THROW(parse_stress({"-n"}), UsageError);
  EXPECT_THROW(parse_stress({"--paths", "template,nope"}), UsageError);
  EXPECT_THROW(parse_stress({"--paths", "pool,pool"}), UsageError);
  EXPECT_THROW(parse_stress({"--paths", ""}), UsageError);
  EXPECT_THROW(parse_stress({"--memory", "32"}), UsageError);
  EXPECT_THROW(parse_stress({"--bogus"}), UsageError);
}

}  // namespace
}  // namespace forkvm::bench
