// unit tier: the agent's parsing of an identity request (applying it needs a guest: e2e).
#include "guest-init/agent/identity.hpp"

#include <gtest/gtest.h>

#include "guest-init/agent/op_error.hpp"

namespace forkvm::agent {
namespace {

const std::string kEntropy(32, 'e');

TEST(Identity, ParsesEveryField) {
  const auto r = parse_identity({{"type", "identity"}, {"id", 1}, {"wall_clock_ns", 1700000000123456789},
                                 {"hostname", "child-7.forkvm"}},
                                kEntropy);
  EXPECT_EQ(r.entropy, kEntropy);
  EXPECT_EQ(r.wall_clock_ns, 1700000000123456789);
  EXPECT_EQ(r.hostname, "child-7.forkvm");
  const auto bare = parse_identity({{"type", "identity"}, {"id", 1}}, std::string(4096, 'x'));
  EXPECT_FALSE(bare.wall_clock_ns.has_value());
  EXPECT_FALSE(bare.hostname.has_value());
}

TEST(Identity, RejectsBadFields) {
  const nlohmann::json base = {{"type", "identity"}, {"id", 1}};
  EXPECT_THROW(parse_identity(base, std::string(31, 'x')), OpError);
  EXPECT_THROW(parse_identity(base, std::string(4097, 'x')), OpError);
  for (const nlohmann::json& bad :
       {nlohmann::json{{"wall_clock_ns", -5}}, nlohmann::json{{"wall_clock_ns", "soon"}},
        nlohmann::json{{"wall_clock_ns", 1.5}}, nlohmann::json{{"hostname", ""}},
        nlohmann::json{{"hostname", "a b"}}, nlohmann::json{{"hostname", std::string(65, 'a')}},
        nlohmann::json{{"hostname", "semi;colon"}}, nlohmann::json{{"hostname", 7}}}) {
    nlohmann::json h = base;
    h.update(bad);
    EXPECT_THROW(parse_identity(h, kEntropy), OpError) << bad.dump();
  }
}

TEST(Identity, ParsesTheNicsNewAddress) {
  const auto r = parse_identity({{"type", "identity"}, {"id", 1},
                                 {"mac", {{"from", "02:00:00:00:00:01"}, {"to", "06:AA:bb:cc:dd:ee"}}}},
                                kEntropy);
  ASSERT_TRUE(r.mac_from && r.mac_to);
  EXPECT_EQ(*r.mac_from, (protocol::MacAddress{2, 0, 0, 0, 0, 1}));
  EXPECT_EQ(*r.mac_to, (protocol::MacAddress{6, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}));
  const nlohmann::json base = {{"type", "identity"}, {"id", 1}};
  for (const nlohmann::json& bad :
       {nlohmann::json("02:00:00:00:00:01"), nlohmann::json{{"from", "02:00:00:00:00:01"}},
        nlohmann::json{{"from", "02:00:00:00:00:01"}, {"to", "01:00:5e:00:00:01"}},  // multicast
        nlohmann::json{{"from", "02:00:00:00:00:01"}, {"to", "00:00:00:00:00:00"}},
        nlohmann::json{{"from", "nonsense"}, {"to", "02:00:00:00:00:02"}},
        nlohmann::json{{"from", 7}, {"to", "02:00:00:00:00:02"}}}) {
    nlohmann::json h = base;
    h["mac"] = bad;
    EXPECT_THROW(parse_identity(h, kEntropy), OpError) << bad.dump();
  }
}

}  // namespace
}  // namespace forkvm::agent
