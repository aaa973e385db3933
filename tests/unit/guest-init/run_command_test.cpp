#include "guest-init/run_command.hpp"

#include <gtest/gtest.h>

#include "guest-init/kernel_cmdline.hpp"

namespace forkvm {
namespace {

TEST(RunCommand, DecodesPercentEscapes) {
  EXPECT_EQ(decode_run_command("echo%20hello"), "echo hello");
  EXPECT_EQ(decode_run_command("a%2fb%2Fc"), "a/b/c");  // either case
  EXPECT_EQ(decode_run_command("100%25"), "100%");
  EXPECT_EQ(decode_run_command("line1%0Aline2"), "line1\nline2");
  EXPECT_EQ(decode_run_command("a+b"), "a+b");  // '+' is not a space
  EXPECT_EQ(decode_run_command("%FF"), std::string(1, '\xff'));
  EXPECT_EQ(decode_run_command(""), "");
}

TEST(RunCommand, RejectsBadEscapes) {
  EXPECT_THROW(decode_run_command("%"), AgentConfigError);
  EXPECT_THROW(decode_run_command("abc%2"), AgentConfigError);
  EXPECT_THROW(decode_run_command("%g0"), AgentConfigError);
  EXPECT_THROW(decode_run_command("%0g"), AgentConfigError);
}

TEST(RunCommand, RejectsNul) {
  EXPECT_THROW(decode_run_command("a%00b"), AgentConfigError);
  EXPECT_THROW(decode_run_command(std::string_view("a\0b", 3)), AgentConfigError);
}

TEST(RunCommand, EncodeLeavesNoSpacesQuotesOrPercent) {
  const std::string encoded = encode_run_command("echo \"50% done\"\n\t'x' $HOME");
  for (char c : std::string(" \t\n\"'$")) EXPECT_EQ(encoded.find(c), std::string::npos) << c;
  EXPECT_EQ(encode_run_command("ls -l /tmp"), "ls%20-l%20/tmp");
}

TEST(RunCommand, RoundTripsEveryByteExceptNul) {
  std::string all;
  for (int b = 1; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(decode_run_command(encode_run_command(all)), all);
}

TEST(RunCommand, EncodedCommandSurvivesKernelParsing) {
  const std::string cmd = "printf '%s\\n' \"a b\" && exit 7";
  const auto params = parse_kernel_cmdline("console=ttyS0 forkvm.run=" + encode_run_command(cmd) +
                                           " panic=-1");
  ASSERT_EQ(params.size(), 3u);
  EXPECT_EQ(params[1].key, "forkvm.run");
  EXPECT_EQ(decode_run_command(*params[1].value), cmd);
}

}  // namespace
}  // namespace forkvm
