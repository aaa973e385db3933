// Which destination addresses are special: not the public internet, so that a rule allowing a
// host by name (or "*") must not reach them. Only an allow rule naming the address or a CIDR
// block holding it can (no DNS rebinding onto the host's network or the cloud metadata service).
//
// IPv4, by kind:
//   unspecified  0.0.0.0/8          loopback   127.0.0.0/8
//   private      10/8, 172.16/12, 192.168/16
//   metadata     169.254.169.254    link-local 169.254.0.0/16 (the rest of it)
//   cgnat        100.64.0.0/10      multicast  224.0.0.0/4
//   broadcast    255.255.255.255    reserved   240.0.0.0/4 (the rest of it)
//   reserved     192.0.0.0/24 (IETF protocol assignments), 192.0.2.0/24, 198.51.100.0/24,
//                203.0.113.0/24 (documentation), 198.18.0.0/15 (benchmarking),
//                192.88.99.0/24 (the retired 6to4 relay anycast)
// Documentation and benchmarking ranges are treated as reserved (special), not public: nothing
// legitimate lives there, so refusing them costs nothing.
//
// IPv6, by kind:
//   unspecified  ::                 loopback    ::1
//   metadata     fd00:ec2::254 (EC2's IPv6 metadata service)
//   unique-local fc00::/7 (the rest of it)
//   link-local   fe80::/10          site-local  fec0::/10 (deprecated, still routed by some)
//   multicast    ff00::/8
//   reserved     100::/64 (discard), 2001::/32 (Teredo: the IPv4 end cannot be checked),
//                2001:2::/48 (benchmarking), 2001:10::/28 and 2001:20::/28 (ORCHID),
//                2001:db8::/32 and 3fff::/20 (documentation), 64:ff9b:1::/48 (local NAT64),
//                and everything outside 2000::/3 not named here (not allocated for unicast)
// Forms that embed an IPv4 address take the kind of that address (public if it is public):
//   IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d (the well-known
//   prefix, /96) and 6to4 2002:AABB:CCDD::/48 (a.b.c.d = AA.BB.CC.DD).
#pragma once

#include <boost/asio/ip/address.hpp>
#include <optional>
#include <string_view>

namespace forkvm::net {

/// Why `address` is special ("loopback", "private", "unique-local", "link-local", "site-local",
/// "metadata", "cgnat", "unspecified", "multicast", "broadcast", "reserved"), or nullopt for a
/// public address. The text is a static string.
std::optional<std::string_view> special_address_kind(const boost::asio::ip::address& address);

/// `address` with an IPv4-mapped IPv6 address (::ffff:a.b.c.d) turned into the IPv4 address it
/// reaches; any other address unchanged. Rules and requests compare addresses in this form.
boost::asio::ip::address canonical_address(const boost::asio::ip::address& address);

}  // namespace forkvm::net
