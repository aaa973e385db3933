#include "guest-init/kernel_cmdline.hpp"

#include <gtest/gtest.h>

namespace forkvm {
namespace {

// Flattens the result to "key=value" / "key" strings for compact assertions.
std::vector<std::string> flat(std::string_view cmdline) {
  std::vector<std::string> out;
  for (const auto& p : parse_kernel_cmdline(cmdline)) {
    out.push_back(p.value ? p.key + "=" + *p.value : p.key);
  }
  return out;
}

using V = std::vector<std::string>;

TEST(KernelCmdline, SplitsOnWhitespaceAndTrailingNewline) {
  EXPECT_EQ(flat("console=ttyS0 reboot=k  panic=-1\n"),
            (V{"console=ttyS0", "reboot=k", "panic=-1"}));
  EXPECT_EQ(flat("  a\tb\n"), (V{"a", "b"}));
  EXPECT_TRUE(parse_kernel_cmdline("").empty());
  EXPECT_TRUE(parse_kernel_cmdline(" \n ").empty());
}

TEST(KernelCmdline, KeyWithoutValueHasNoValue) {
  const auto params = parse_kernel_cmdline("quiet forkvm.x= ro");
  ASSERT_EQ(params.size(), 3u);
  EXPECT_EQ(params[0].key, "quiet");
  EXPECT_FALSE(params[0].value.has_value());
  EXPECT_EQ(params[1].key, "forkvm.x");
  ASSERT_TRUE(params[1].value.has_value());  // "key=" is an empty value, not no value
  EXPECT_EQ(*params[1].value, "");
}

TEST(KernelCmdline, SplitsAtTheFirstEquals) {
  const auto params = parse_kernel_cmdline("a=b=c");
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(params[0].key, "a");
  EXPECT_EQ(*params[0].value, "b=c");
}

TEST(KernelCmdline, QuotedValueKeepsSpacesAndLosesQuotes) {
  EXPECT_EQ(flat("x=1 forkvm.run=\"echo hello  world\" y=2"),
            (V{"x=1", "forkvm.run=echo hello  world", "y=2"}));
}

TEST(KernelCmdline, QuotedWholeParameter) {
  // next_arg(): a leading quote is skipped and the final quote stripped.
  EXPECT_EQ(flat("\"a=b c\" d"), (V{"a=b c", "d"}));
  EXPECT_EQ(flat("\"plain word\""), (V{"plain word"}));
}

TEST(KernelCmdline, QuotesInsideAValueAreKept) {
  // Only a quote right after '=' is special; a quote later on just toggles quoting.
  EXPECT_EQ(flat("a=b\"c d\" e"), (V{"a=b\"c d\"", "e"}));
}

TEST(KernelCmdline, UnterminatedQuoteRunsToTheEnd) {
  EXPECT_EQ(flat("a=\"b c d"), (V{"a=b c d"}));
}

TEST(KernelCmdline, LoneQuoteValueIsEmpty) {
  // For `a="` the kernel strips the opening quote, which is also the last character.
  const auto params = parse_kernel_cmdline("a=\"");
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(*params[0].value, "");
}

TEST(KernelCmdline, LeadingEqualsIsNotASeparator) {
  // The kernel uses index 0 as "no '=' seen", so "=x" has no value and "=x=y" splits later.
  const auto params = parse_kernel_cmdline("=x =x=y");
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].key, "=x");
  EXPECT_FALSE(params[0].value.has_value());
  EXPECT_EQ(params[1].key, "=x");
  EXPECT_EQ(*params[1].value, "y");
}

TEST(KernelCmdline, DoubleDashIsAnOrdinaryWord) {
  EXPECT_EQ(flat("a -- b=c"), (V{"a", "--", "b=c"}));
}

}  // namespace
}  // namespace forkvm
