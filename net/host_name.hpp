// The host of an egress request, normalized and checked before any rule sees it.
//
// The proxy splits host and port first (an HTTP absolute URI, a Host header or a CONNECT
// authority); what is left goes through normalize_host(), and every comparison afterwards is
// on its result. The rules, strictest first:
// - ASCII only; no spaces, control characters, '%' (IPv6 zone ids), '[' or ']' (IPv6 literals
//   come without brackets), '/', '@' or ':' outside an IPv6 literal.
// - Lower case; one trailing dot is removed ("PyPI.org." is "pypi.org").
// - Anything holding ':' is an IPv6 literal (inet_pton syntax; canonical text afterwards).
// - A strict dotted quad ("10.0.0.1": four decimals 0..255 without leading zeros) is an IPv4
//   literal. Any other name whose last label is numeric ("127.1", "0x7f.0.0.1", "2130706433",
//   "017.0.0.1", "a.1") is refused: inet_aton() and URL parsers read such names as addresses,
//   and no real top-level domain is numeric.
// - Otherwise a DNS name: 1..253 characters, labels of 1..63 characters from [a-z0-9-_], none
//   starting or ending with '-'. Internationalized names must come as punycode ("xn--").
#pragma once

#include <boost/asio/ip/address.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace forkvm::net {

/// Whether a normalized host is a DNS name or an IP literal.
enum class HostKind { kName, kAddress };

/// A host that passed normalize_host().
struct NormalizedHost {
  HostKind kind = HostKind::kName;
  /// The normalized text: the lower-case name without a trailing dot, or the address in its
  /// canonical form (boost's to_string(): dotted quad, or RFC 5952 IPv6).
  std::string text;
  /// The address, for kAddress (unspecified for a name).
  boost::asio::ip::address address;
};

/// What normalize_host() found: the host, or why it was refused.
struct HostCheck {
  std::optional<NormalizedHost> host;  ///< set when the host is acceptable
  std::string error;                   ///< why not (printable ASCII), when `host` is empty
};

/// Normalizes and checks a requested host (see the rules at the top of this file).
HostCheck normalize_host(std::string_view host);

/// Whether `text` is a strict dotted quad: four decimals 0..255 without leading zeros or signs.
bool is_strict_dotted_quad(std::string_view text) noexcept;

}  // namespace forkvm::net
