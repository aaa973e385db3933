// `forkvm-bench soak` without KVM: its options, the rule that judges a run (flat after the
// warm-up, no failure), the table row, and counting a runtime dir's entries at any depth.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench/fork_options.hpp"
#include "bench/proc_status.hpp"
#include "bench/soak_options.hpp"
#include "bench/soak_report.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::bench {
namespace {

SoakOptions parse_soak(std::vector<std::string> a) { return parse_soak_options(a); }

TEST(SoakOptions, DefaultsAreTheIssuesThousandCycles) {
  const SoakOptions o = parse_soak({});
  EXPECT_EQ(o.cycles, 1000u);
  EXPECT_EQ(o.parent_every, 10u);
  EXPECT_EQ(o.report_every, 100u);
  EXPECT_EQ(o.stop_after, 50u);
  EXPECT_TRUE(o.snapshot.empty());
  EXPECT_EQ(o.memory_mib, 256u);
  EXPECT_FALSE(o.json);
}

TEST(SoakOptions, ParsesEveryOption) {
  const SoakOptions a = parse_soak({"--cycles", "200", "--parent-every", "5", "--report-every", "20",
                               "--stop-after", "3", "--snapshot", "/s", "--json"});
  EXPECT_EQ(a.cycles, 200u);
  EXPECT_EQ(a.parent_every, 5u);
  EXPECT_EQ(a.report_every, 20u);
  EXPECT_EQ(a.stop_after, 3u);
  EXPECT_EQ(a.snapshot, "/s");
  EXPECT_TRUE(a.json);
  const SoakOptions b = parse_soak({"-n", "7", "--vcpus", "2", "--memory", "128", "--image-dir", "/i"});
  EXPECT_EQ(b.cycles, 7u);
  EXPECT_EQ(b.vcpus, 2u);
  EXPECT_EQ(b.memory_mib, 128u);
  EXPECT_EQ(b.image_dir, "/i");
}

TEST(SoakOptions, RejectsBadInput) {
  EXPECT_THROW(parse_soak({"-n", "0"}), UsageError);
  EXPECT_THROW(parse_soak({"--parent-every", "0"}), UsageError);
  EXPECT_THROW(parse_soak({"--report-every", "x"}), UsageError);
  EXPECT_THROW(parse_soak({"--stop-after"}), UsageError);
  EXPECT_THROW(parse_soak({"--snapshot", ""}), UsageError);
  EXPECT_THROW(parse_soak({"--bogus"}), UsageError);
  EXPECT_THROW(parse_soak({"--snapshot", "/s", "--memory", "128"}), UsageError)
      << "a snapshot fixes its machine";
}

SoakPoint point(unsigned cycle, size_t fds, size_t threads, size_t tmp, unsigned failures = 0) {
  SoakPoint p;
  p.cycle = cycle;
  p.counters.fds = fds;
  p.counters.threads = threads;
  p.counters.runtime_entries = tmp;
  p.failures = failures;
  return p;
}

TEST(SoakVerdict, FlatAfterTheWarmUpPasses) {
  // The first window may grow (lazily started threads, caches); later ones must not.
  EXPECT_TRUE(soak_verdict({point(0, 10, 5, 0), point(100, 30, 9, 2), point(200, 30, 9, 2),
                            point(300, 28, 9, 2)})
                  .empty());
}

TEST(SoakVerdict, GrowthAfterTheWarmUpFailsNamingTheCounter) {
  const auto why = soak_verdict({point(0, 10, 5, 0), point(100, 30, 9, 2), point(200, 31, 9, 2),
                                 point(300, 32, 10, 4)});
  ASSERT_EQ(why.size(), 3u);
  EXPECT_EQ(why[0], "open fds (image layers aside) rose from 30 after cycle 100 to 32 after cycle 300");
  EXPECT_EQ(why[1], "threads rose from 9 after cycle 100 to 10 after cycle 300");
  EXPECT_EQ(why[2], "runtime dir entries rose from 2 after cycle 100 to 4 after cycle 300");
}

TEST(SoakVerdict, ImageLayersMayMoveWithinTheParentsBoundOnly) {
  // The parent's image holds 1..kMaxLayers layers of its own between merges: its memfds move
  // by up to soak_layer_slack() (3) without a leak; other fds may not rise at all.
  ASSERT_EQ(soak_layer_slack(), 3u);
  auto with_layers = [](SoakPoint p, size_t layers) {
    p.counters.layer_fds = layers;
    return p;
  };
  EXPECT_TRUE(soak_verdict({point(0, 10, 5, 0), with_layers(point(100, 31, 9, 2), 1),
                            with_layers(point(200, 34, 9, 2), 4)})
                  .empty());
  const auto why = soak_verdict({point(0, 10, 5, 0), with_layers(point(100, 31, 9, 2), 1),
                                 with_layers(point(200, 35, 9, 2), 5)});
  ASSERT_EQ(why.size(), 1u);
  EXPECT_EQ(why[0], "image-layer memfds (by more than 3) rose from 1 after cycle 100 to 5 after cycle 200");
  const auto other = soak_verdict({point(0, 10, 5, 0), with_layers(point(100, 31, 9, 2), 2),
                                   with_layers(point(200, 31, 9, 2), 1)});
  ASSERT_EQ(other.size(), 1u) << "one layer fewer and the same total: another fd was left";
  EXPECT_EQ(other[0], "open fds (image layers aside) rose from 29 after cycle 100 to 30 after cycle 200");
}

TEST(SoakVerdict, WithOneReportTheStartIsTheReference) {
  EXPECT_TRUE(soak_verdict({point(0, 10, 5, 0), point(50, 10, 5, 0)}).empty());
  const auto why = soak_verdict({point(0, 10, 5, 0), point(50, 11, 5, 0)});
  ASSERT_EQ(why.size(), 1u);
  EXPECT_EQ(why[0], "open fds (image layers aside) rose from 10 after cycle 0 to 11 after cycle 50");
}

TEST(SoakVerdict, AnyFailureFails) {
  const auto why = soak_verdict({point(0, 10, 5, 0), point(100, 10, 5, 0, 1), point(200, 10, 5, 0, 1)});
  ASSERT_EQ(why.size(), 1u);
  EXPECT_EQ(why[0], "1 cycles or parent rounds failed");
  EXPECT_FALSE(soak_verdict({}).empty()) << "nothing measured is no pass";
}

TEST(SoakVerdict, ACallRefusedByAThreadFilterFails) {
  SoakPoint start = point(0, 10, 5, 0), end = point(100, 10, 5, 0);
  start.counters.denied_calls = 2;  // before the soak: not its doing
  EXPECT_TRUE(soak_verdict({start, end}).empty());
  end.counters.denied_calls = 5;
  const auto why = soak_verdict({start, end});
  ASSERT_EQ(why.size(), 1u);
  EXPECT_EQ(why[0], "the thread filters refused 3 system calls (forkvm's log on stderr names them)");
}

TEST(SoakReport, RowAndJsonCarryTheCounters) {
  SoakPoint p = point(300, 41, 12, 3, 2);
  p.counters.layer_fds = 2;
  p.counters.denied_calls = 7;
  p.counters.rss = 50ull << 20;
  p.cycle_ms = summarize({10, 20, 30});
  const std::string row = soak_table_row(p);
  EXPECT_NE(row.find("   300    41   2  12     50.0"), std::string::npos) << row;
  EXPECT_NE(row.find("-1.0"), std::string::npos) << "an unknown counter shows as -1: " << row;
  const auto j = to_json(p);
  EXPECT_EQ(j["fds"], 41);
  EXPECT_EQ(j["layer_fds"], 2);
  EXPECT_EQ(j["runtime_entries"], 3);
  EXPECT_EQ(j["rss"], 50ull << 20);
  EXPECT_TRUE(j["rss_anon"].is_null());
  EXPECT_EQ(j["cycle_ms"]["p50"], 20.0);
  EXPECT_EQ(j["failures"], 2);
  EXPECT_EQ(j["denied_calls"], 7);
  EXPECT_NE(row.find("    3    2    7 |"), std::string::npos) << "tmp, fail, deny: " << row;
}

TEST(SoakReport, CountsEntriesAtAnyDepth) {
  test::TempDir dir("soak-count");
  EXPECT_EQ(count_tree_entries(dir.path()), 0u);
  std::filesystem::create_directories(dir.path() / "forkvm-a" / "sub");
  std::ofstream(dir.path() / "forkvm-a" / ".forkvm-owner") << "1 2\n";
  std::ofstream(dir.path() / "forkvm-a" / "sub" / "f") << "x";
  std::filesystem::create_symlink("/", dir.path() / "link");  // counted, not followed
  EXPECT_EQ(count_tree_entries(dir.path()), 5u);
  const SoakCounters c = read_soak_counters(dir.path());
  EXPECT_EQ(c.runtime_entries, 5u);
  EXPECT_GT(c.fds, 2u);
  EXPECT_EQ(c.layer_fds, 0u) << "no VM ran in this process";
  EXPECT_GE(c.threads, 1u);
  EXPECT_TRUE(c.rss.has_value());
  EXPECT_THROW(count_tree_entries((dir.path() / "missing").string()), std::runtime_error);
}

TEST(SoakReport, CountsImageLayerMemfdsByName) {
  const size_t before = count_fds_to("/memfd:forkvm-ram-layer");
  const int layer = ::memfd_create("forkvm-ram-layer", MFD_CLOEXEC);
  const int other = ::memfd_create("forkvm-guest-ram", MFD_CLOEXEC);
  ASSERT_GE(layer, 0);
  ASSERT_GE(other, 0);
  EXPECT_EQ(count_fds_to("/memfd:forkvm-ram-layer"), before + 1);
  EXPECT_EQ(read_soak_counters("/proc/self/fdinfo").layer_fds, before + 1);
  ::close(layer);
  ::close(other);
  EXPECT_EQ(count_fds_to("/memfd:forkvm-ram-layer"), before);
}

}  // namespace
}  // namespace forkvm::bench
