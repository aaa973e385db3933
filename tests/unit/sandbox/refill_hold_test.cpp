// unit tier: RefillHold, when a Template pool's refill thread may replace a VM a fork took
// (sandbox/refill_hold.hpp).
#include "sandbox/refill_hold.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace forkvm {
namespace {

using namespace std::chrono_literals;
using Clock = RefillHold::Clock;

TEST(RefillHold, AChildHoldsTheRefillUntilItsFirstExecEnds) {
  RefillHold hold(1000ms);
  const Clock::time_point t0 = Clock::now();
  EXPECT_FALSE(hold.holds(2, t0)) << "nothing taken, nothing held";
  ASSERT_TRUE(hold.taken(1, t0));
  ASSERT_TRUE(hold.holds(1, t0 + 10ms));
  EXPECT_EQ(*hold.holds(1, t0 + 10ms), t0 + 1000ms);
  hold.answered();
  EXPECT_FALSE(hold.holds(1, t0 + 20ms)) << "the child answered: refill now";
}

TEST(RefillHold, TheHoldEndsAtItsLimitWhenTheChildNeverAnswers) {
  RefillHold hold(500ms);
  const Clock::time_point t0 = Clock::now();
  ASSERT_TRUE(hold.taken(1, t0));
  EXPECT_TRUE(hold.holds(1, t0 + 499ms));
  EXPECT_FALSE(hold.holds(1, t0 + 500ms));
  // A later fork starts a hold of its own; the silent child from before does not extend it.
  ASSERT_TRUE(hold.taken(1, t0 + 2s));
  EXPECT_TRUE(hold.holds(1, t0 + 2s + 10ms));
  hold.answered();
  EXPECT_FALSE(hold.holds(1, t0 + 2s + 20ms)) << "only the new child was waited for";
}

TEST(RefillHold, AnEmptyPoolRefillsAtOnce) {
  RefillHold hold(1000ms);
  const Clock::time_point t0 = Clock::now();
  EXPECT_FALSE(hold.taken(0, t0)) << "the fork took the last VM: no hold";
  EXPECT_FALSE(hold.holds(0, t0));
  ASSERT_TRUE(hold.taken(1, t0));
  EXPECT_TRUE(hold.holds(1, t0 + 1ms));
  EXPECT_FALSE(hold.holds(0, t0 + 1ms)) << "a second fork emptied the pool meanwhile";
}

TEST(RefillHold, EveryHoldingChildMustAnswer) {
  RefillHold hold(1000ms);
  const Clock::time_point t0 = Clock::now();
  ASSERT_TRUE(hold.taken(3, t0));
  ASSERT_TRUE(hold.taken(2, t0 + 5ms));
  hold.answered();
  EXPECT_TRUE(hold.holds(2, t0 + 10ms)) << "one of two answered";
  hold.answered();
  EXPECT_FALSE(hold.holds(2, t0 + 10ms));
  hold.answered();  // more answers than holders: nothing goes negative
  EXPECT_FALSE(hold.holds(2, t0 + 10ms));
}

TEST(RefillHold, ZeroTurnsItOff) {
  RefillHold hold(0ms);
  EXPECT_FALSE(hold.taken(1, Clock::now()));
  EXPECT_FALSE(hold.holds(1, Clock::now()));
}

}  // namespace
}  // namespace forkvm
