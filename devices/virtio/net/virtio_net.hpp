// The virtio-net wire format (virtio 1.2 §5.1; Linux include/uapi/linux/virtio_net.h): the
// feature bits forkvm uses, the per-frame header, the config-space layout and the frame size
// limits. All fields are little-endian, as on x86-64.
#pragma once

#include <cstddef>
#include <cstdint>

namespace forkvm::virtio_net {

/// Queue indices (§5.1.2): one receive/transmit pair, no control queue (VIRTIO_NET_F_CTRL_VQ
/// is not offered).
inline constexpr uint16_t kRxQueue = 0;
inline constexpr uint16_t kTxQueue = 1;

/// Feature bits (§5.1.3). forkvm always offers VERSION_1 | MAC | STATUS. With a TAP backend
/// that carries a virtio-net header per frame (IFF_VNET_HDR, net_backend.hpp) it also offers
/// the checksum and TCP segmentation offloads in kOffloads, which the TAP performs or accepts
/// (the header passes between the guest and the TAP, checked). Never mergeable receive buffers:
/// every frame is one chain.
namespace feature {
inline constexpr uint64_t kCsum = 1ull << 0;       ///< the driver may send partial checksums
inline constexpr uint64_t kGuestCsum = 1ull << 1;  ///< the driver takes partial checksums
inline constexpr uint64_t kMtu = 1ull << 3;      ///< mtu in config space is valid (not offered)
inline constexpr uint64_t kMac = 1ull << 5;      ///< mac in config space is valid
inline constexpr uint64_t kGuestTso4 = 1ull << 7;  ///< the driver takes TCPv4 GSO frames
inline constexpr uint64_t kGuestTso6 = 1ull << 8;  ///< the driver takes TCPv6 GSO frames
inline constexpr uint64_t kHostTso4 = 1ull << 11;  ///< the driver may send TCPv4 GSO frames
inline constexpr uint64_t kHostTso6 = 1ull << 12;  ///< the driver may send TCPv6 GSO frames
inline constexpr uint64_t kMrgRxbuf = 1ull << 15;  ///< mergeable receive buffers (not offered)
inline constexpr uint64_t kStatus = 1ull << 16;  ///< status in config space is valid
/// What a TAP with a virtio-net header adds. The TSO bits need their CSUM bit (§5.1.3.1);
/// a driver that accepts one without it gets no offload at all (net_header.hpp).
inline constexpr uint64_t kOffloads =
    kCsum | kGuestCsum | kGuestTso4 | kGuestTso6 | kHostTso4 | kHostTso6;
}  // namespace feature

/// Header flags (virtio_net_hdr.flags, §5.1.6).
namespace header_flag {
inline constexpr uint8_t kNeedsCsum = 1;  ///< VIRTIO_NET_HDR_F_NEEDS_CSUM: csum_start/offset valid
inline constexpr uint8_t kDataValid = 2;  ///< VIRTIO_NET_HDR_F_DATA_VALID: checksum verified (RX)
}  // namespace header_flag

/// Header gso_type values (§5.1.6).
namespace gso {
inline constexpr uint8_t kNone = 0;
inline constexpr uint8_t kTcpV4 = 1;
inline constexpr uint8_t kUdp = 3;     ///< UFO: not offered
inline constexpr uint8_t kTcpV6 = 4;
inline constexpr uint8_t kEcn = 0x80;  ///< ECN bit: not offered (no HOST_ECN / GUEST_ECN)
}  // namespace gso

/// Bits of the config-space status field (§5.1.4).
namespace link_status {
inline constexpr uint16_t kLinkUp = 1;    ///< VIRTIO_NET_S_LINK_UP
inline constexpr uint16_t kAnnounce = 2;  ///< VIRTIO_NET_S_ANNOUNCE (needs the control queue)
}  // namespace link_status

/// The header in front of every frame on both queues (struct virtio_net_hdr_v1, §5.1.6). With
/// VIRTIO_F_VERSION_1 it is always 12 bytes, num_buffers included, whether or not
/// VIRTIO_NET_F_MRG_RXBUF was negotiated (§5.1.6.1).
struct Header {
  uint8_t flags;         ///< header_flag bits: 0 without offloads
  uint8_t gso_type;      ///< a gso value: kNone without offloads
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;  ///< receive: descriptor chains the frame uses; 1 here (§5.1.6.4)
};
static_assert(sizeof(Header) == 12);
inline constexpr size_t kHeaderBytes = sizeof(Header);

/// Config space (struct virtio_net_config, §5.1.4) up to mtu; packed as Linux declares it.
struct __attribute__((packed)) Config {
  uint8_t mac[6];
  uint16_t status;               ///< link_status bits (valid with VIRTIO_NET_F_STATUS)
  uint16_t max_virtqueue_pairs;  ///< valid with VIRTIO_NET_F_MQ (not offered): 1
  uint16_t mtu;                  ///< valid with VIRTIO_NET_F_MTU (not offered): 1500
};
static_assert(offsetof(Config, status) == 6);
static_assert(offsetof(Config, mtu) == 10);
static_assert(sizeof(Config) == 12);

/// An Ethernet header (destination, source, EtherType): the shortest frame worth sending.
inline constexpr size_t kEthHeaderBytes = 14;
/// The largest frame either way: a segmentation-offload frame of up to 64 KiB
/// (GSO_LEGACY_MAX_SIZE, Linux's default gso_max_size, which counts the IP packet; an IPv6
/// packet can be 40 bytes over it) behind an 802.1Q-tagged Ethernet header (14 + 4 bytes).
/// Without offloads Linux sends at most its MTU, at most 65535 without VIRTIO_NET_F_MTU.
/// Longer transmit chains are refused; received frames longer than this are dropped.
inline constexpr size_t kMaxFrameBytes = kEthHeaderBytes + 4 + 65536 + 40;
/// The receive buffer Linux's virtio_net posts without mergeable buffers or offloads
/// (add_recvbuf_small: hdr_len + GOOD_PACKET_LEN, ETH_HLEN + VLAN_HLEN + ETH_DATA_LEN): a
/// frame longer than 1518 bytes does not fit it and is dropped (counted), as Linux's own
/// receive_small would drop it.
inline constexpr size_t kLinuxSmallRxBuffer = kHeaderBytes + kEthHeaderBytes + 4 + 1500;

}  // namespace forkvm::virtio_net
