// unit tier: special_address_kind() names every range that is not the public internet, for
// IPv4, IPv6 and the IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4),
// and leaves public addresses alone; canonical_address() unmaps ::ffff:a.b.c.d.
#include "net/special_address.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace forkvm::net {
namespace {

using boost::asio::ip::make_address;

std::string kind(const char* address) {
  const auto k = special_address_kind(make_address(address));
  return k ? std::string(*k) : std::string("public");
}

void expect_kinds(const std::vector<std::pair<const char*, const char*>>& table) {
  for (const auto& [address, expected] : table) {
    EXPECT_EQ(kind(address), expected) << address;
  }
}

TEST(SpecialAddress, Ipv4Ranges) {
  expect_kinds({
      {"0.0.0.0", "unspecified"},       {"0.1.2.3", "unspecified"},
      {"0.255.255.255", "unspecified"}, {"1.0.0.0", "public"},
      {"127.0.0.1", "loopback"},        {"127.255.255.255", "loopback"},
      {"126.255.255.255", "public"},    {"128.0.0.0", "public"},
      {"10.0.0.0", "private"},          {"10.255.255.255", "private"},
      {"9.255.255.255", "public"},      {"11.0.0.0", "public"},
      {"172.16.0.0", "private"},        {"172.31.255.255", "private"},
      {"172.15.255.255", "public"},     {"172.32.0.0", "public"},
      {"192.168.0.1", "private"},       {"192.168.255.255", "private"},
      {"192.167.255.255", "public"},    {"192.169.0.0", "public"},
      {"169.254.169.254", "metadata"},  {"169.254.169.253", "link-local"},
      {"169.254.0.1", "link-local"},    {"169.254.255.255", "link-local"},
      {"169.253.255.255", "public"},    {"169.255.0.0", "public"},
      {"100.64.0.0", "cgnat"},          {"100.127.255.255", "cgnat"},
      {"100.63.255.255", "public"},     {"100.128.0.0", "public"},
      {"224.0.0.1", "multicast"},       {"239.255.255.255", "multicast"},
      {"223.255.255.255", "public"},    {"240.0.0.0", "reserved"},
      {"255.255.255.254", "reserved"},  {"255.255.255.255", "broadcast"},
  });
}

TEST(SpecialAddress, Ipv4DocumentationAndBenchmarkingRangesAreReserved) {
  expect_kinds({
      {"192.0.0.1", "reserved"},     {"192.0.2.1", "reserved"},    {"198.51.100.7", "reserved"},
      {"203.0.113.9", "reserved"},   {"198.18.0.1", "reserved"},   {"198.19.255.255", "reserved"},
      {"198.17.255.255", "public"},  {"198.20.0.0", "public"},     {"192.88.99.1", "reserved"},
      {"192.0.1.255", "public"},     {"203.0.114.0", "public"},    {"8.8.8.8", "public"},
      {"1.1.1.1", "public"},         {"93.184.216.34", "public"},  {"151.101.0.223", "public"},
  });
}

TEST(SpecialAddress, Ipv6Ranges) {
  expect_kinds({
      {"::", "unspecified"},
      {"::1", "loopback"},
      {"fd00:ec2::254", "metadata"},
      {"fd00:ec2::253", "unique-local"},
      {"fd00::1", "unique-local"},
      {"fc00::1", "unique-local"},
      {"fdff:ffff::1", "unique-local"},
      {"fe80::1", "link-local"},
      {"febf:ffff::1", "link-local"},
      {"fec0::1", "site-local"},
      {"feff::1", "site-local"},
      {"ff02::1", "multicast"},
      {"ff0e::1", "multicast"},
      {"2001:db8::1", "reserved"},
      {"3fff::1", "reserved"},
      {"100::1", "reserved"},
      {"2001::1", "reserved"},
      {"2001:2::1", "reserved"},
      {"2001:10::1", "reserved"},
      {"2001:20::1", "reserved"},
      {"64:ff9b:1::1", "reserved"},
      {"4000::1", "reserved"},
      {"1000::1", "reserved"},
      {"2606:4700:4700::1111", "public"},
      {"2001:4860:4860::8888", "public"},
      {"2a00:1450:4001::1", "public"},
      {"2001:3::1", "public"},
  });
}

TEST(SpecialAddress, EmbeddedIpv4FormsTakeTheKindOfTheirIpv4Address) {
  expect_kinds({
      // IPv4-mapped
      {"::ffff:127.0.0.1", "loopback"},
      {"::ffff:10.1.2.3", "private"},
      {"::ffff:169.254.169.254", "metadata"},
      {"::ffff:100.64.0.1", "cgnat"},
      {"::ffff:0.0.0.0", "unspecified"},
      {"::ffff:255.255.255.255", "broadcast"},
      {"::ffff:8.8.8.8", "public"},
      // IPv4-compatible (deprecated)
      {"::127.0.0.1", "loopback"},
      {"::10.0.0.1", "private"},
      {"::169.254.169.254", "metadata"},
      {"::0.0.0.2", "unspecified"},
      {"::8.8.8.8", "public"},
      // NAT64, the well-known prefix
      {"64:ff9b::10.0.0.1", "private"},
      {"64:ff9b::7f00:1", "loopback"},
      {"64:ff9b::a9fe:a9fe", "metadata"},
      {"64:ff9b::808:808", "public"},
      // 6to4
      {"2002:a00:1::1", "private"},
      {"2002:7f00:1::", "loopback"},
      {"2002:a9fe:a9fe::1", "metadata"},
      {"2002:c0a8:101:5::1", "private"},
      {"2002:808:808::1", "public"},
  });
}

TEST(SpecialAddress, CanonicalAddressUnmapsIpv4MappedOnly) {
  const auto unmapped = canonical_address(make_address("::ffff:10.0.0.1"));
  EXPECT_TRUE(unmapped.is_v4());
  EXPECT_EQ(unmapped.to_string(), "10.0.0.1");
  EXPECT_EQ(canonical_address(make_address("::10.0.0.1")).to_string(), "::10.0.0.1");
  EXPECT_EQ(canonical_address(make_address("64:ff9b::a00:1")).to_string(), "64:ff9b::a00:1");
  EXPECT_EQ(canonical_address(make_address("::1")).to_string(), "::1");
  EXPECT_EQ(canonical_address(make_address("8.8.8.8")).to_string(), "8.8.8.8");
}

}  // namespace
}  // namespace forkvm::net
