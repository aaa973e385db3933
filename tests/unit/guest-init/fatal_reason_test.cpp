#include "contract/fatal_reason.hpp"

#include <gtest/gtest.h>

#include <string>

namespace forkvm {
namespace {

TEST(FatalReason, EveryCodeHasANameAndGuestGarbageIsSafe) {
  for (uint32_t code = 0; code <= static_cast<uint32_t>(FatalReason::kRootFilesystem); ++code) {
    EXPECT_STRNE(fatal_reason_name(code), "unknown reason") << code;
  }
  EXPECT_EQ(std::string(fatal_reason_name(static_cast<uint32_t>(FatalReason::kConfig))),
            "bad forkvm.* command-line key");
  EXPECT_STREQ(fatal_reason_name(13), "unknown reason");
  EXPECT_STREQ(fatal_reason_name(0xffffff), "unknown reason");  // largest 24-bit argument
}

}  // namespace
}  // namespace forkvm
