#include "base/retry_backoff.hpp"

#include <gtest/gtest.h>

namespace forkvm {
namespace {

using ms = std::chrono::milliseconds;

TEST(RetryBackoff, DoublesFromFirstToMaxAndResetsOnSuccess) {
  RetryBackoff b;
  EXPECT_EQ(b.failed(), ms(50));
  EXPECT_EQ(b.failed(), ms(100));
  EXPECT_EQ(b.failed(), ms(200));
  for (int i = 0; i < 20; ++i) b.failed();
  EXPECT_EQ(b.failed(), ms(5000));  // capped
  EXPECT_EQ(b.next(), ms(5000));
  b.succeeded();
  EXPECT_EQ(b.next(), ms(50));
  EXPECT_EQ(b.failed(), ms(50));
}

TEST(RetryBackoff, MaxBelowFirstIsFirst) {
  RetryBackoff b(ms(30), ms(10));
  EXPECT_EQ(b.failed(), ms(30));
  EXPECT_EQ(b.failed(), ms(30));
}

}  // namespace
}  // namespace forkvm
