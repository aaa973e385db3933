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

TEST(Text, PrintableEscapesEveryControlByteAndCapsTheLength) {
  EXPECT_EQ(printable("plain text"), "plain text");
  EXPECT_EQ(printable("\x1b[2J\x07\r\n\t\x7f\xc2\x9b\\"), "\\x1b[2J\\x07\\x0d\\x0a\\x09\\x7f\\xc2\\x9b\\\\");
  EXPECT_EQ(printable(std::string(10, 'a'), 4), "aaaa...");
  const std::string worst = printable(std::string(100000, '\x1b'), 256);
  EXPECT_EQ(worst.size(), 4u * 256 + 3);
}

TEST(Text, PrintableLinesKeepsLineBreaksAndTheEnd) {
  EXPECT_EQ(printable_lines("a\r\nb\tc\n\x1b[31md\re"), "a\nb\tc\n\\x1b[31md\\x0de");
  EXPECT_EQ(printable_lines("0123456789", 4), "...6789");
  EXPECT_EQ(printable_lines(""), "");
}

}  // namespace
}  // namespace forkvm
