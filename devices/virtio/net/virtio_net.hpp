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

/// Feature bits (§5.1.3). forkvm offers VERSION_1 | MAC | STATUS only: no checksum or
/// segmentation offloads and no mergeable receive buffers, so every frame is one whole Ethernet
/// frame in one chain, and the header the device writes is all zeros but num_buffers.
namespace feature {
inline constexpr uint64_t kMtu = 1ull << 3;      ///< mtu in config space is valid (not offered)
inline constexpr uint64_t kMac = 1ull << 5;      ///< mac in config space is valid
inline constexpr uint64_t kMrgRxbuf = 1ull << 15;  ///< mergeable receive buffers (not offered)
inline constexpr uint64_t kStatus = 1ull << 16;  ///< status in config space is valid
}  // namespace feature

/// Bits of the config-space status field (§5.1.4).
namespace link_status {
inline constexpr uint16_t kLinkUp = 1;    ///< VIRTIO_NET_S_LINK_UP
inline constexpr uint16_t kAnnounce = 2;  ///< VIRTIO_NET_S_ANNOUNCE (needs the control queue)
}  // namespace link_status

/// The header in front of every frame on both queues (struct virtio_net_hdr_v1, §5.1.6). With
/// VIRTIO_F_VERSION_1 it is always 12 bytes, num_buffers included, whether or not
/// VIRTIO_NET_F_MRG_RXBUF was negotiated (§5.1.6.1).
struct Header {
  uint8_t flags;         ///< VIRTIO_NET_HDR_F_*: 0 without offloads
  uint8_t gso_type;      ///< VIRTIO_NET_HDR_GSO_NONE (0) without offloads
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
/// The largest frame either way: an 802.1Q-tagged frame (14 + 4 bytes of header) at the
/// largest MTU Linux's virtio_net lets a guest set without VIRTIO_NET_F_MTU (ETH_MAX_MTU,
/// 65535). Longer transmit chains are refused; received frames longer than this are dropped.
inline constexpr size_t kMaxFrameBytes = kEthHeaderBytes + 4 + 65535;
/// The receive buffer Linux's virtio_net posts without mergeable buffers or offloads
/// (add_recvbuf_small: hdr_len + GOOD_PACKET_LEN, ETH_HLEN + VLAN_HLEN + ETH_DATA_LEN): a
/// frame longer than 1518 bytes does not fit it and is dropped (counted), as Linux's own
/// receive_small would drop it.
inline constexpr size_t kLinuxSmallRxBuffer = kHeaderBytes + kEthHeaderBytes + 4 + 1500;

}  // namespace forkvm::virtio_net
