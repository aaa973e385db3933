// ConsoleRelay: the console callback runs on the relay's thread, so a callback that sleeps
// does not hold up the thread that pushes (a vCPU's); bytes past the cap are dropped and
// counted; everything queued is delivered by stop(), in order.
#include "vmm/console_relay.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

namespace forkvm {
namespace {

using namespace std::chrono_literals;

TEST(ConsoleRelay, ASleepingCallbackDoesNotStallThePusher) {
  ConsoleRelay relay(1024);
  std::mutex mu;
  std::string got;
  std::thread::id callback_thread;
  relay.start([&](std::string_view bytes) {
    std::this_thread::sleep_for(100ms);  // a slow embedder
    std::lock_guard lock(mu);
    got.append(bytes);
    callback_thread = std::this_thread::get_id();
  });
  std::string pushed;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 2000; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    pushed += line;
    relay.push(line);
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  // 2000 pushes against a callback that takes 100 ms a call: far less than one call's time.
  EXPECT_LT(took, 50ms);
  relay.stop();
  EXPECT_NE(callback_thread, std::this_thread::get_id());
  EXPECT_GT(relay.dropped(), 0u);
  EXPECT_EQ(relay.delivered() + relay.dropped(), pushed.size());
  EXPECT_EQ(relay.delivered(), got.size());
  // What arrived is the start of the output, in order (the rest was dropped at the cap).
  ASSERT_LE(got.size(), pushed.size());
  EXPECT_EQ(got, pushed.substr(0, got.size()));
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
