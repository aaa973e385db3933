// ConsoleRelay: the console callback runs on the relay's thread, so a callback that blocks
// does not hold up the thread that pushes (a vCPU's); bytes past the cap are dropped and
// counted; everything queued is delivered by stop(), in order; mute() ends the calls (what
// Vm::request_stop() relies on).
#include "vmm/console_relay.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

namespace forkvm {
namespace {

using namespace std::chrono_literals;

/// Whether `part` is a subsequence of `whole` (its bytes appear there in the same order).
bool in_order_within(const std::string& part, const std::string& whole) {
  size_t j = 0;
  for (char c : part) {
    while (j < whole.size() && whole[j] != c) ++j;
    if (j == whole.size()) return false;
    ++j;
  }
  return true;
}

TEST(ConsoleRelay, ABlockedCallbackDoesNotStallThePusher) {
  ConsoleRelay relay(1024);
  std::mutex mu;
  std::string got;
  std::thread::id callback_thread;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  relay.start([&](std::string_view bytes) {
    // A stuck embedder: the first call blocks until the pushes are over (bounded, so a relay
    // that made the pusher wait fails the test instead of hanging it).
    (void)released.wait_for(10s);
    std::lock_guard lock(mu);
    got.append(bytes);
    callback_thread = std::this_thread::get_id();
  });
  std::string pushed;
  auto pushing = std::async(std::launch::async, [&] {
    for (int i = 0; i < 2000; ++i) {
      const std::string line = "line " + std::to_string(i) + "\n";
      pushed += line;
      relay.push(line);
    }
  });
  EXPECT_EQ(pushing.wait_for(5s), std::future_status::ready)
      << "push() waited for a callback that was blocked";
  release.set_value();
  pushing.wait();
  relay.stop();
  EXPECT_NE(callback_thread, std::this_thread::get_id());
  EXPECT_GT(relay.dropped(), 0u);
  EXPECT_EQ(relay.delivered() + relay.dropped(), pushed.size());
  EXPECT_EQ(relay.delivered(), got.size());
  // What arrived is in the order it was pushed (the rest was dropped at the cap).
  EXPECT_TRUE(in_order_within(got, pushed));
  EXPECT_EQ(got.substr(0, 7), "line 0\n");
}

TEST(ConsoleRelay, MuteWaitsForACallInProgressAndEndsTheCalls) {
  ConsoleRelay relay(1 << 20);
  std::atomic<int> calls{0};
  std::atomic<bool> in_call_done{false};
  std::promise<void> entered;
  relay.start([&](std::string_view) {
    if (calls.fetch_add(1) == 0) {
      entered.set_value();
      std::this_thread::sleep_for(200ms);
      in_call_done = true;
    }
  });
  relay.push("first");
  ASSERT_EQ(entered.get_future().wait_for(10s), std::future_status::ready);
  relay.push("queued while the first call runs");
  relay.mute();
  EXPECT_TRUE(in_call_done) << "mute() returned while a call was running";
  relay.push("after mute");
  relay.stop();
  EXPECT_EQ(calls.load(), 1) << "a call started after mute()";
}

TEST(ConsoleRelay, MuteFromInsideTheCallbackDoesNotDeadlock) {
  ConsoleRelay relay(1 << 20);
  std::atomic<int> calls{0};
  std::promise<void> muted;
  relay.start([&](std::string_view) {
    ++calls;
    relay.mute();
    muted.set_value();
  });
  relay.push("x");
  EXPECT_EQ(muted.get_future().wait_for(10s), std::future_status::ready);
  relay.push("y");
  relay.stop();
  EXPECT_EQ(calls.load(), 1);
}

TEST(ConsoleRelay, StopDeliversWhatIsQueuedAndPushAfterStopIsIgnored) {
  ConsoleRelay relay(1 << 20);
  std::string got;
  relay.start([&](std::string_view bytes) { got.append(bytes); });
  relay.push("hello ");
  relay.push("world");
  relay.stop();
  EXPECT_EQ(got, "hello world");
  EXPECT_EQ(relay.dropped(), 0u);
  relay.push("late");
  relay.stop();  // idempotent
  EXPECT_EQ(got, "hello world");
}

TEST(ConsoleRelay, ACallbackThatThrowsDoesNotEndTheProcess) {
  ConsoleRelay relay(1024);
  int calls = 0;
  relay.start([&](std::string_view) {
    ++calls;
    throw std::runtime_error("embedder bug");
  });
  relay.push("a");
  std::this_thread::sleep_for(20ms);
  relay.push("b");
  relay.stop();
  EXPECT_GE(calls, 1);
  EXPECT_EQ(relay.delivered(), 2u);
}

TEST(ConsoleRelay, NothingIsQueuedBeforeStart) {
  ConsoleRelay relay(1024);
  relay.push("lost");
  EXPECT_EQ(relay.dropped(), 0u);
  EXPECT_EQ(relay.delivered(), 0u);
}

}  // namespace
}  // namespace forkvm
