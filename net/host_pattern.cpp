#include "net/host_pattern.hpp"

#include <array>
#include <cstdint>

#include "net/host_name.hpp"
#include "net/http_text.hpp"
#include "net/special_address.hpp"

namespace forkvm::net {
namespace {

using boost::asio::ip::address;
using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;
using Bytes = std::array<uint8_t, 16>;

/// The address's bytes (4 or 16 of them, left-aligned) and its width in bits.
unsigned to_bytes(const address& a, Bytes& out) {
  out.fill(0);
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    for (std::size_t i = 0; i < b.size(); ++i) out[i] = b[i];
    return 32;
  }
  const auto b = a.to_v6().to_bytes();
  for (std::size_t i = 0; i < b.size(); ++i) out[i] = b[i];
  return 128;
}

/// Whether the first `bits` bits of `a` and `b` agree.
bool same_prefix(const Bytes& a, const Bytes& b, unsigned bits) noexcept {
  for (unsigned i = 0; i < bits; ++i) {
    const auto mask = static_cast<uint8_t>(0x80u >> (i % 8));
    if ((a[i / 8] & mask) != (b[i / 8] & mask)) return false;
  }
  return true;
}

/// `a` with every bit after `bits` cleared.
address masked(const address& a, unsigned bits) {
  Bytes b;
  const unsigned width = to_bytes(a, b);
  for (unsigned i = bits; i < width; ++i) {
    b[i / 8] = static_cast<uint8_t>(b[i / 8] & ~(0x80u >> (i % 8)));
  }
  if (width == 32) return address_v4(address_v4::bytes_type{b[0], b[1], b[2], b[3]});
  address_v6::bytes_type v6;
  for (std::size_t i = 0; i < v6.size(); ++i) v6[i] = b[i];
  return address_v6(v6);
}

PatternCheck refuse_pattern(std::string error) { return PatternCheck{std::nullopt, std::move(error)}; }

PatternCheck block_pattern(address network, unsigned prefix) {
  // An IPv4-mapped block of prefix >= 96 is the IPv4 block it maps.
  if (network.is_v6() && network.to_v6().is_v4_mapped() && prefix >= 96) {
    network = canonical_address(network);
    prefix -= 96;
  }
  HostPattern p;
  p.kind = HostPattern::Kind::kBlock;
  p.block.emplace(network, prefix);
  p.text = p.block->text();
  return PatternCheck{std::move(p), {}};
}

/// "address/prefix".
PatternCheck parse_cidr(std::string_view text, std::size_t slash) {
  const std::string_view addr_text = text.substr(0, slash);
  const std::string_view prefix_text = text.substr(slash + 1);
  const HostCheck host = normalize_host(addr_text);
  if (!host.host || host.host->kind != HostKind::kAddress) {
    return refuse_pattern("not an IP address before '/' in " + in_quotes(text));
  }
  const address network = host.host->address;
  const unsigned width = network.is_v4() ? 32 : 128;
  if (prefix_text.empty() || prefix_text.size() > 3 ||
      (prefix_text.size() > 1 && prefix_text[0] == '0')) {
    return refuse_pattern("bad prefix length in " + in_quotes(text));
  }
  unsigned prefix = 0;
  for (char c : prefix_text) {
    if (c < '0' || c > '9') return refuse_pattern("bad prefix length in " + in_quotes(text));
    prefix = prefix * 10 + static_cast<unsigned>(c - '0');
  }
  if (prefix > width) {
    return refuse_pattern("prefix length " + std::to_string(prefix) + " out of range (0.." +
                  std::to_string(width) + ") in " + in_quotes(text));
  }
  const address base = masked(network, prefix);
  if (base != network) {
    return refuse_pattern("host bits set in " + in_quotes(text) + " (the block is " + base.to_string() +
                  "/" + std::to_string(prefix) + ")");
  }
  return block_pattern(network, prefix);
}

}  // namespace

AddressBlock::AddressBlock(address network, unsigned prefix)
    : network_(std::move(network)), prefix_(prefix) {}

bool AddressBlock::contains(const address& a) const {
  const address c = canonical_address(a);
  if (c.is_v4() != network_.is_v4()) return false;
  Bytes want;
  Bytes got;
  to_bytes(network_, want);
  to_bytes(c, got);
  return same_prefix(want, got, prefix_);
}

std::string AddressBlock::text() const {
  const unsigned width = network_.is_v4() ? 32 : 128;
  if (prefix_ == width) return network_.to_string();
  return network_.to_string() + "/" + std::to_string(prefix_);
}

bool HostPattern::matches_name(std::string_view host_name) const noexcept {
  switch (kind) {
    case Kind::kExact:
      return host_name == name;
    case Kind::kSuffix:
      return host_name.size() > name.size() && host_name.ends_with(name);
    case Kind::kAny:
      return true;
    case Kind::kBlock:
      return false;
  }
  return false;
}

PatternCheck parse_host_pattern(std::string_view text) {
  if (text.empty()) return refuse_pattern("empty host");
  if (has_control_char(text)) return refuse_pattern("control character in host " + in_quotes(text));
  if (text == "*") {
    HostPattern p;
    p.kind = HostPattern::Kind::kAny;
    p.text = "*";
    return PatternCheck{std::move(p), {}};
  }
  if (text.starts_with("*.")) {
    const std::string_view suffix = text.substr(2);
    if (suffix.empty() || suffix == ".") return refuse_pattern("nothing after \"*.\" in " + in_quotes(text));
    const HostCheck host = normalize_host(suffix);
    if (!host.host) return refuse_pattern(host.error);
    const NormalizedHost& normalized = *host.host;
    if (normalized.kind == HostKind::kAddress) {
      return refuse_pattern("the suffix of " + in_quotes(text) + " is an address, not a name");
    }
    HostPattern p;
    p.kind = HostPattern::Kind::kSuffix;
    p.name = "." + normalized.text;
    p.text = "*" + p.name;
    return PatternCheck{std::move(p), {}};
  }
  if (text.find('*') != std::string_view::npos) {
    return refuse_pattern("'*' is allowed only as \"*\" or a leading \"*.\" in " + in_quotes(text));
  }
  if (const std::size_t slash = text.find('/'); slash != std::string_view::npos) {
    return parse_cidr(text, slash);
  }
  const HostCheck host = normalize_host(text);
  if (!host.host) return refuse_pattern(host.error);
  const NormalizedHost& normalized = *host.host;
  if (normalized.kind == HostKind::kAddress) {
    const unsigned width = normalized.address.is_v4() ? 32 : 128;
    return block_pattern(normalized.address, width);
  }
  HostPattern p;
  p.kind = HostPattern::Kind::kExact;
  p.name = normalized.text;
  p.text = p.name;
  return PatternCheck{std::move(p), {}};
}

}  // namespace forkvm::net
