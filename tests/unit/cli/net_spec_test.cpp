// unit tier: --net tap=NAME[,netns=PATH][,mac=MAC] as `forkvm run` reads it.
#include "tools/cli/net_spec.hpp"

#include <gtest/gtest.h>

#include <string>

#include "tools/cli/args.hpp"

namespace forkvm::cli {
namespace {

TEST(CliNet, ParsesTapNamespaceAndMac) {
  NetConfig n = parse_net_spec("tap=fvtap0");
  EXPECT_EQ(n.tap, "fvtap0");
  EXPECT_EQ(n.netns, "");
  EXPECT_EQ(n.fd, -1);
  EXPECT_EQ(n.mac, (std::array<uint8_t, 6>{}));
  n = parse_net_spec("netns=/run/netns/forkvm-a,mac=02:AA:00:00:00:07,tap=fvtap0");
  EXPECT_EQ(n.tap, "fvtap0");
  EXPECT_EQ(n.netns, "/run/netns/forkvm-a");
  EXPECT_EQ(n.mac, (std::array<uint8_t, 6>{0x02, 0xaa, 0, 0, 0, 7}));
}

TEST(CliNet, RefusesBadSpecs) {
  for (const char* bad : {"", "fvtap0", "tap=", "netns=/run/netns/x", "tap=a,tap=b",
                          "tap=a,mac=01:00:5e:00:00:01", "tap=a,mac=02:00", "tap=a,speed=10",
                          "tap=a,,mac=02:00:00:00:00:01"}) {
    EXPECT_THROW(parse_net_spec(bad), UsageError) << bad;
  }
}

}  // namespace
}  // namespace forkvm::cli
