// Failed forks of a benchmark: counted, the first few kept, one note for the report.
#include "bench/fork_failures.hpp"

#include <gtest/gtest.h>

namespace forkvm::bench {
namespace {

TEST(ForkFailures, NoFailureNoNote) {
  const ForkFailures f;
  EXPECT_EQ(f.count(), 0u);
  EXPECT_EQ(f.note(20), "");
}

TEST(ForkFailures, CountsAllKeepsTheFirstFew) {
  ForkFailures f;
  f.add("triple fault");
  EXPECT_EQ(f.note(21), "1 FAILED fork (not samples; retried) out of 21 attempts: triple fault");
  for (int i = 0; i < 4; ++i) f.add("error " + std::to_string(i));
  EXPECT_EQ(f.count(), 5u);
  ASSERT_EQ(f.kept().size(), ForkFailures::kKeep);
  EXPECT_EQ(f.kept()[1], "error 0");
  EXPECT_EQ(f.note(25), "5 FAILED forks (not samples; retried) out of 25 attempts: triple fault | "
                        "error 0 | error 1 | ...");
}

TEST(ForkFailures, LongErrorsAreCut) {
  ForkFailures f;
  f.add(std::string(1000, 'x'));
  EXPECT_EQ(f.kept()[0].size(), 300u);
}

}  // namespace
}  // namespace forkvm::bench
