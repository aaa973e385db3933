// unit tier: a virtio-net device's snapshot state (its MAC) round-trips and hostile JSON is
// refused by field; MAC text parsing.
#include "devices/virtio/net/net_state.hpp"

#include <gtest/gtest.h>

#include <string>

#include "forkvm/errors.hpp"
#include "tests/support/state_codec_checks.hpp"

namespace forkvm {
namespace {

using nlohmann::json;

std::string decode_error(const json& j) {
  return test::snapshot_error_of([](const json& v) { return net_state_from_json(v); }, j);
}

TEST(NetState, RoundTrips) {
  const NetDevice::State s{{0x02, 0xab, 0xcd, 0xef, 0x01, 0x23}};
  EXPECT_EQ(to_json(s), (json{{"mac", "02:ab:cd:ef:01:23"}}));
  EXPECT_EQ(net_state_from_json(to_json(s)), s);
  EXPECT_EQ(net_state_from_json(json::parse(to_json(s).dump())), s);
  // Upper-case hex digits are read too.
  EXPECT_EQ(net_state_from_json(json{{"mac", "02:AB:CD:EF:01:23"}}), s);
}

TEST(NetState, EveryFieldIsChecked) {
  test::expect_every_field_checked(to_json(NetDevice::State{{0x02, 0, 0, 0, 0, 1}}),
                                   [](const json& j) { return net_state_from_json(j); }, "net");
}

TEST(NetState, RefusesMalformedAndMulticastMacs) {
  for (const char* bad : {"", "02:00:00:00:00", "02:00:00:00:00:00:00", "02-00-00-00-00-01",
                          "0g:00:00:00:00:01", "02:00:00:00:00:1", " 2:00:00:00:00:01",
                          "02:00:00:00:00:01\n", "020:00:00:00:00:1"}) {
    const std::string e = decode_error(json{{"mac", bad}});
    EXPECT_NE(e.find("net.mac"), std::string::npos) << "'" << bad << "': " << e;
  }
  const std::string multicast = decode_error(json{{"mac", "01:00:5e:00:00:01"}});
  EXPECT_NE(multicast.find("multicast"), std::string::npos) << multicast;
  EXPECT_NE(decode_error(json{{"mac", std::string(4096, 'a')}}).find("net.mac"), std::string::npos);
}

}  // namespace
}  // namespace forkvm
