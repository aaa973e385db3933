// The host part of an egress rule or a secret binding (EgressRule::host), parsed once when the
// policy is compiled:
// - "name": one host name, normalized as normalize_host() does (so "PyPI.org." is "pypi.org");
// - "*.suffix": any name strictly below the suffix (the suffix must be a name);
// - "*": any host name; for an IP literal request only a public address (the policy's rule);
// - an IP literal or a CIDR block ("10.0.0.5", "::1", "10.0.0.0/8", "fd00::/8"): the prefix is
//   a decimal without leading zeros, at most 32 or 128, and the address has no bits set after
//   it. IPv6 literals come without brackets and without zone ids.
// IPv4-mapped forms are IPv4: a block inside ::ffff:0:0/96 of prefix 96 or more is the IPv4
// block it maps ("::ffff:10.0.0.0/104" is 10.0.0.0/8); a larger IPv6 block never matches an
// IPv4 address.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace forkvm::net {

/// An IP literal (a /32 or /128 block) or a CIDR block, in canonical form (never IPv4-mapped).
class AddressBlock {
 public:
  /// `network` with no bits set after `prefix` (checked by parse_host_pattern()).
  AddressBlock(boost::asio::ip::address network, unsigned prefix);

  /// Whether `address` (in any form; IPv4-mapped is IPv4) is inside the block.
  bool contains(const boost::asio::ip::address& address) const;
  /// The block as text: "10.0.0.0/8", or the bare address for a single one ("10.0.0.5").
  std::string text() const;

 private:
  boost::asio::ip::address network_;
  unsigned prefix_;
};

/// A parsed host pattern.
struct HostPattern {
  enum class Kind {
    kExact,   ///< one name: `name`
    kSuffix,  ///< names ending in `name`, which starts with '.'
    kAny,     ///< "*"
    kBlock,   ///< an address or a CIDR block: `block`
  };
  Kind kind = Kind::kExact;
  std::string name;                   ///< kExact: the name; kSuffix: ".suffix"
  std::optional<AddressBlock> block;  ///< kBlock only
  std::string text;                   ///< the normalized pattern, for descriptions

  /// Whether a normalized host name (not an address) matches: kExact equal, kSuffix strictly
  /// below, kAny always, kBlock never.
  bool matches_name(std::string_view host_name) const noexcept;
};

/// What parse_host_pattern() found: the pattern, or what is wrong with it.
struct PatternCheck {
  std::optional<HostPattern> pattern;  ///< set when the text is a valid pattern
  std::string error;                   ///< why not (printable ASCII), when `pattern` is empty
};

/// Parses and normalizes a host pattern (see the top of this file).
PatternCheck parse_host_pattern(std::string_view text);

}  // namespace forkvm::net
