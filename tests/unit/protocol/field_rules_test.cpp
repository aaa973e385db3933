// The MAC address rules of contract/protocol/field_rules.hpp, shared by the host (which sends a
// fork's fresh MAC in the identity request) and the agent (which parses it).
#include "contract/protocol/field_rules.hpp"

#include <gtest/gtest.h>

namespace forkvm::protocol {
namespace {

TEST(MacAddress, ParsesAndFormatsBothCases) {
  const auto mac = parse_mac("02:AB:cd:0f:10:ff");
  ASSERT_TRUE(mac.has_value());
  EXPECT_EQ(*mac, (MacAddress{0x02, 0xab, 0xcd, 0x0f, 0x10, 0xff}));
  EXPECT_EQ(format_mac(*mac), "02:ab:cd:0f:10:ff");
  EXPECT_EQ(parse_mac(format_mac(*mac)), mac);
}

TEST(MacAddress, RefusesEverythingElse) {
  for (const char* bad : {"", "02:ab:cd:0f:10", "02:ab:cd:0f:10:ff:", "02-ab-cd-0f-10-ff",
                          "02:ab:cd:0f:10:fg", "2:ab:cd:0f:10:ff0", " 02:ab:cd:0f:10:f",
                          "02:ab:cd:0f:10:f\n", "0x:ab:cd:0f:10:ff"}) {
    EXPECT_FALSE(parse_mac(bad).has_value()) << '"' << bad << '"';
  }
}

TEST(MacAddress, UnicastRule) {
  EXPECT_TRUE(valid_unicast_mac({0x02, 0, 0, 0, 0, 1}));
  EXPECT_FALSE(valid_unicast_mac({0, 0, 0, 0, 0, 0}));           // none
  EXPECT_FALSE(valid_unicast_mac({0x01, 0, 0x5e, 0, 0, 1}));     // multicast
  EXPECT_FALSE(valid_unicast_mac({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));  // broadcast
}

}  // namespace
}  // namespace forkvm::protocol
