#include "base/text.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>

namespace forkvm {
namespace {

TEST(Text, HexHasNoLeadingZerosAndCoversTheWholeRange) {
  EXPECT_EQ(hex(0), "0x0");
  EXPECT_EQ(hex(0xf), "0xf");
  EXPECT_EQ(hex(0x10), "0x10");
  EXPECT_EQ(hex(0xfee00000), "0xfee00000");
  EXPECT_EQ(hex(UINT64_MAX), "0xffffffffffffffff");
}

TEST(Text, ErrnoTextIsStrerror) {
  EXPECT_EQ(errno_text(ENOENT), "No such file or directory");
  EXPECT_FALSE(errno_text(EINVAL).empty());
}

}  // namespace
}  // namespace forkvm
