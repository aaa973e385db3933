#include "devices/virtio/net/net_header.hpp"

#include <linux/if_tun.h>

namespace forkvm::virtio_net {
namespace {

/// The offloads that count: each TSO bit with its checksum bit.
struct Offloads {
  bool host_csum, host_tso4, host_tso6;     // TX
  bool guest_csum, guest_tso4, guest_tso6;  // RX
};

Offloads effective(uint64_t acked) noexcept {
  Offloads o{};
  o.host_csum = (acked & feature::kCsum) != 0;
  o.host_tso4 = o.host_csum && (acked & feature::kHostTso4) != 0;
  o.host_tso6 = o.host_csum && (acked & feature::kHostTso6) != 0;
  o.guest_csum = (acked & feature::kGuestCsum) != 0;
  o.guest_tso4 = o.guest_csum && (acked & feature::kGuestTso4) != 0;
  o.guest_tso6 = o.guest_csum && (acked & feature::kGuestTso6) != 0;
  return o;
}

/// Whether a frame of `gso_type` may pass when TCPv4 / TCPv6 segmentation is allowed as
/// given: NONE always, TCPv4 and TCPv6 with theirs, nothing else (UDP, ECN, unknown: never
/// offered).
bool gso_allowed(uint8_t gso_type, bool tso4, bool tso6) noexcept {
  switch (gso_type) {
    case gso::kNone:
      return true;
    case gso::kTcpV4:
      return tso4;
    case gso::kTcpV6:
      return tso6;
    default:
      return false;
  }
}

}  // namespace

unsigned tap_offloads(uint64_t acked) noexcept {
  const Offloads o = effective(acked);
  unsigned flags = 0;
  if (o.guest_csum) flags |= TUN_F_CSUM;
  if (o.guest_tso4) flags |= TUN_F_TSO4;
  if (o.guest_tso6) flags |= TUN_F_TSO6;
  return flags;
}

std::optional<Header> checked_tx_header(const Header& h, uint64_t acked, size_t frame_bytes) noexcept {
  const Offloads o = effective(acked);
  // Guest-controlled, every field.
  if ((h.flags & ~header_flag::kNeedsCsum) != 0) return std::nullopt;
  const bool needs_csum = (h.flags & header_flag::kNeedsCsum) != 0;
  if (needs_csum) {
    if (!o.host_csum) return std::nullopt;
    // The 16-bit checksum field at csum_start + csum_offset must lie inside the frame.
    if (static_cast<size_t>(h.csum_start) + h.csum_offset + 2 > frame_bytes) return std::nullopt;
  }
  if (!gso_allowed(h.gso_type, o.host_tso4, o.host_tso6)) return std::nullopt;
  if (h.gso_type != gso::kNone &&
      (!needs_csum || h.gso_size == 0 || h.hdr_len > frame_bytes)) {
    return std::nullopt;
  }
  Header out = h;
  out.num_buffers = 0;
  return out;
}

std::optional<Header> guest_rx_header(const Header& h, uint64_t acked) noexcept {
  const Offloads o = effective(acked);
  Header out = h;
  if (!gso_allowed(h.gso_type, o.guest_tso4, o.guest_tso6)) return std::nullopt;
  if (!o.guest_csum) {
    // A partial checksum the guest cannot finish is a frame it cannot use.
    if ((h.flags & header_flag::kNeedsCsum) != 0) return std::nullopt;
    out.flags = 0;
  }
  out.num_buffers = 1;
  return out;
}

}  // namespace forkvm::virtio_net
