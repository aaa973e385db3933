// The virtio-net header on a TAP that carries one per frame (IFF_VNET_HDR with a 12-byte
// header: the same struct virtio_net_hdr_v1 the guest uses, so it passes through unchanged
// once checked). What may pass each way depends on the features the driver accepted:
// - TX (guest to TAP, guest-controlled): a header asking for an offload the driver did not
//   negotiate, or whose checksum or segment fields do not fit the frame, is refused; the frame
//   is counted bad and not sent. The kernel checks the header again (virtio_net_hdr_to_skb).
// - RX (TAP to guest): the TAP is told which offloads the guest takes (tap_offloads() for
//   TUNSETOFFLOAD), so the kernel segments and checksums the rest itself; a frame that still
//   carries one the guest cannot take is dropped, and num_buffers is always 1 (one chain).
// A TSO feature counts only together with its checksum feature (§5.1.3.1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "devices/virtio/net/virtio_net.hpp"

namespace forkvm::virtio_net {

/// TUN_F_* flags for TUNSETOFFLOAD: the offloads the guest takes on receive, given the
/// features the driver accepted (0: the kernel hands the TAP whole, checksummed frames).
unsigned tap_offloads(uint64_t acked) noexcept;

/// The header to give the TAP for a frame of `frame_bytes` that the guest sent behind `h`, or
/// nullopt when `h` asks for what `acked` does not allow or does not fit the frame: flags
/// other than NEEDS_CSUM, NEEDS_CSUM without CSUM, csum_start + csum_offset + 2 past the frame,
/// a gso_type other than NONE or a negotiated TCPv4/TCPv6, segmentation without NEEDS_CSUM or
/// with gso_size 0, or hdr_len past the frame. num_buffers is cleared.
std::optional<Header> checked_tx_header(const Header& h, uint64_t acked, size_t frame_bytes) noexcept;

/// The header to give the guest for a frame the TAP delivered behind `h`, or nullopt when the
/// frame needs an offload the guest did not negotiate (dropped). Without GUEST_CSUM the flags
/// are cleared; num_buffers is set to 1.
std::optional<Header> guest_rx_header(const Header& h, uint64_t acked) noexcept;

}  // namespace forkvm::virtio_net
