// sandbox::Reaper without a VM: remains with only a temp dir. Every teardown handed over from
// several threads at once runs, once, and drain() returns only after all of them; the queue
// never holds more than kMaxPending.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "forkvm/sandbox.hpp"
#include "sandbox/reaper.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::sandbox {
namespace {

namespace fs = std::filesystem;

TEST(Reaper, TearsDownEverythingHandedOverAndDrainWaitsForIt) {
  test::TempDir root("reap");
  constexpr int kThreads = 4;
  constexpr int kEach = 100;  // 400 in all: several times the bound
  std::vector<std::string> dirs;
  for (int i = 0; i < kThreads * kEach; ++i) {
    const fs::path d = root.path() / ("d" + std::to_string(i));
    fs::create_directories(d / "sub");
    std::ofstream(d / "sub" / "file") << "x";
    dirs.push_back(d.string());
  }
  Reaper& reaper = Reaper::instance();
  const uint64_t before = reaper.finished();
  std::atomic<size_t> most_pending{0};
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          reaper.submit({nullptr, dirs[static_cast<size_t>(t * kEach + i)], nullptr});
          const size_t now = reaper.pending();
          size_t seen = most_pending.load();
          while (now > seen && !most_pending.compare_exchange_weak(seen, now)) {
          }
        }
      });
    }
  }
  Sandbox::wait_for_teardowns();
  EXPECT_EQ(reaper.finished() - before, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(reaper.pending(), 0u);
  EXPECT_LE(most_pending.load(), Reaper::kMaxPending + 1) << "queued plus the one running";
  for (const auto& d : dirs) EXPECT_FALSE(fs::exists(d)) << d;
}

TEST(Reaper, FinishRunsFirstKeepsItsOwnerAliveAndAThrowLosesNothing) {
  auto dir = fs::temp_directory_path() / ("forkvm-reaper-finish-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto owner = std::make_shared<int>(7);
  std::weak_ptr<int> watch = owner;
  std::atomic<bool> dir_there_at_finish{false};
  std::atomic<int> seen{0};
  Remains r;
  r.temp_dir = dir.string();
  r.finish = [owner = std::move(owner), &dir_there_at_finish, &seen, d = dir] {
    dir_there_at_finish = fs::exists(d);  // runs before the directory goes
    seen = *owner;
  };
  Remains thrower;
  thrower.finish = [] { throw std::runtime_error("finish failed"); };
  Reaper::instance().submit(std::move(thrower));  // logged; the next teardown still runs
  Reaper::instance().submit(std::move(r));
  Sandbox::wait_for_teardowns();
  EXPECT_TRUE(dir_there_at_finish);
  EXPECT_EQ(seen.load(), 7);
  EXPECT_TRUE(watch.expired()) << "the reaper still holds what finish kept alive";
  EXPECT_FALSE(fs::exists(dir));
}

TEST(Reaper, DrainWithNothingQueuedReturnsAtOnce) {
  Reaper::instance().drain();
  EXPECT_EQ(Reaper::instance().pending(), 0u);
}

}  // namespace
}  // namespace forkvm::sandbox
