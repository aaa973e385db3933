#include "net/special_address.hpp"

#include <array>
#include <cstdint>

namespace forkvm::net {
namespace {

using boost::asio::ip::address_v6;
using Bytes6 = address_v6::bytes_type;

/// Whether the top `bits` bits of `value` equal those of `network`.
constexpr bool in_v4(uint32_t value, uint32_t network, unsigned bits) noexcept {
  const uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
  return (value & mask) == (network & mask);
}

constexpr uint32_t v4(unsigned a, unsigned b, unsigned c, unsigned d) noexcept {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

std::optional<std::string_view> v4_kind(uint32_t a) {
  if (in_v4(a, v4(0, 0, 0, 0), 8)) return "unspecified";
  if (in_v4(a, v4(127, 0, 0, 0), 8)) return "loopback";
  if (in_v4(a, v4(10, 0, 0, 0), 8) || in_v4(a, v4(172, 16, 0, 0), 12) ||
      in_v4(a, v4(192, 168, 0, 0), 16)) {
    return "private";
  }
  if (a == v4(169, 254, 169, 254)) return "metadata";
  if (in_v4(a, v4(169, 254, 0, 0), 16)) return "link-local";
  if (in_v4(a, v4(100, 64, 0, 0), 10)) return "cgnat";
  if (in_v4(a, v4(224, 0, 0, 0), 4)) return "multicast";
  if (a == v4(255, 255, 255, 255)) return "broadcast";
  if (in_v4(a, v4(240, 0, 0, 0), 4)) return "reserved";
  if (in_v4(a, v4(192, 0, 0, 0), 24) || in_v4(a, v4(192, 0, 2, 0), 24) ||
      in_v4(a, v4(198, 51, 100, 0), 24) || in_v4(a, v4(203, 0, 113, 0), 24) ||
      in_v4(a, v4(198, 18, 0, 0), 15) || in_v4(a, v4(192, 88, 99, 0), 24)) {
    return "reserved";
  }
  return std::nullopt;
}

/// Whether the top `bits` bits of `b` equal those of `prefix` (given as its leading bytes).
template <std::size_t N>
bool in_v6(const Bytes6& b, const std::array<uint8_t, N>& prefix, unsigned bits) noexcept {
  for (unsigned i = 0; i < bits; ++i) {
    const unsigned byte = i / 8;
    const auto mask = static_cast<uint8_t>(0x80u >> (i % 8));
    const uint8_t want = byte < N ? prefix[byte] : uint8_t{0};
    if ((b[byte] & mask) != (want & mask)) return false;
  }
  return true;
}

uint32_t embedded_v4(const Bytes6& b, std::size_t at) noexcept {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
         uint32_t{b[at + 3]};
}

std::optional<std::string_view> v6_kind(const Bytes6& b) {
  using P2 = std::array<uint8_t, 2>;
  using P4 = std::array<uint8_t, 4>;
  using P6 = std::array<uint8_t, 6>;
  bool zero12 = true;
  for (std::size_t i = 0; i < 12; ++i) zero12 = zero12 && b[i] == 0;
  if (zero12) {
    const uint32_t low = embedded_v4(b, 12);
    if (low == 0) return "unspecified";
    if (low == 1) return "loopback";
    return v4_kind(low);  // IPv4-compatible ::a.b.c.d
  }
  bool mapped = true;
  for (std::size_t i = 0; i < 10; ++i) mapped = mapped && b[i] == 0;
  if (mapped && b[10] == 0xff && b[11] == 0xff) return v4_kind(embedded_v4(b, 12));
  if (in_v6(b, std::array<uint8_t, 12>{0x00, 0x64, 0xff, 0x9b}, 96)) {
    return v4_kind(embedded_v4(b, 12));  // NAT64, the well-known prefix 64:ff9b::/96
  }
  if (in_v6(b, P2{0x20, 0x02}, 16)) return v4_kind(embedded_v4(b, 2));  // 6to4
  constexpr Bytes6 kMetadata = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
  if (b == kMetadata) return "metadata";  // fd00:ec2::254
  if (in_v6(b, P2{0xfc, 0x00}, 7)) return "unique-local";
  if (in_v6(b, P2{0xfe, 0x80}, 10)) return "link-local";
  if (in_v6(b, P2{0xfe, 0xc0}, 10)) return "site-local";
  if (in_v6(b, P2{0xff, 0x00}, 8)) return "multicast";
  if (in_v6(b, P2{0x01, 0x00}, 64) || in_v6(b, P4{0x20, 0x01, 0x00, 0x00}, 32) ||
      in_v6(b, P6{0x20, 0x01, 0x00, 0x02, 0x00, 0x00}, 48) ||
      in_v6(b, P4{0x20, 0x01, 0x00, 0x10}, 28) || in_v6(b, P4{0x20, 0x01, 0x00, 0x20}, 28) ||
      in_v6(b, P4{0x20, 0x01, 0x0d, 0xb8}, 32) || in_v6(b, P2{0x3f, 0xff}, 20) ||
      in_v6(b, P6{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48)) {
    return "reserved";
  }
  if (!in_v6(b, P2{0x20, 0x00}, 3)) return "reserved";  // not global unicast space
  return std::nullopt;
}

}  // namespace

std::optional<std::string_view> special_address_kind(const boost::asio::ip::address& address) {
  if (address.is_v4()) return v4_kind(address.to_v4().to_uint());
  return v6_kind(address.to_v6().to_bytes());
}

boost::asio::ip::address canonical_address(const boost::asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6());
  }
  return address;
}

}  // namespace forkvm::net
