// The offload rules between the guest and a TAP with a virtio-net header (net_header.hpp):
// which TUN_F_* flags follow from the driver's features, and which headers pass each way.
#include "devices/virtio/net/net_header.hpp"

#include <linux/if_tun.h>

#include <gtest/gtest.h>

namespace forkvm::virtio_net {
namespace {

constexpr uint64_t kAll = feature::kOffloads;

Header gso_header(uint8_t type, uint16_t hdr_len = 54, uint16_t size = 1448) {
  Header h{};
  h.flags = header_flag::kNeedsCsum;
  h.gso_type = type;
  h.hdr_len = hdr_len;
  h.gso_size = size;
  h.csum_start = 34;   // after Ethernet (14) + IPv4 (20)
  h.csum_offset = 16;  // TCP's checksum field
  return h;
}

TEST(NetHeader, TapOffloadsFollowTheGuestsReceiveFeatures) {
  EXPECT_EQ(tap_offloads(0), 0u);
  EXPECT_EQ(tap_offloads(feature::kGuestCsum), unsigned{TUN_F_CSUM});
  EXPECT_EQ(tap_offloads(kAll), unsigned{TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6});
  // TSO without its checksum feature counts for nothing (§5.1.3.1).
  EXPECT_EQ(tap_offloads(feature::kGuestTso4 | feature::kGuestTso6), 0u);
  // The transmit features say nothing about what the guest takes.
  EXPECT_EQ(tap_offloads(feature::kCsum | feature::kHostTso4 | feature::kHostTso6), 0u);
}

TEST(NetHeader, ANegotiatedSegmentedFrameGoesToTheTap) {
  const auto h = checked_tx_header(gso_header(gso::kTcpV4), kAll, 65000);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->gso_type, gso::kTcpV4);
  EXPECT_EQ(h->gso_size, 1448);
  EXPECT_EQ(h->num_buffers, 0);
  EXPECT_TRUE(checked_tx_header(gso_header(gso::kTcpV6), kAll, 65000));
  // A plain frame with a partial checksum, and one with nothing asked.
  Header csum = gso_header(gso::kNone);
  EXPECT_TRUE(checked_tx_header(csum, feature::kCsum, 100));
  EXPECT_TRUE(checked_tx_header(Header{}, 0, 60));
}

TEST(NetHeader, TransmitHeadersAskingForWhatWasNotNegotiatedAreRefused) {
  // Segmentation without HOST_TSO4, or with it but without CSUM.
  EXPECT_FALSE(checked_tx_header(gso_header(gso::kTcpV4), feature::kCsum | feature::kHostTso6, 65000));
  EXPECT_FALSE(checked_tx_header(gso_header(gso::kTcpV4), feature::kHostTso4, 65000));
  EXPECT_FALSE(checked_tx_header(gso_header(gso::kTcpV6), feature::kCsum | feature::kHostTso4, 65000));
  // A partial checksum without CSUM.
  EXPECT_FALSE(checked_tx_header(gso_header(gso::kNone), 0, 100));
  // UDP fragmentation, ECN and unknown types are never offered.
  EXPECT_FALSE(checked_tx_header(gso_header(gso::kUdp), kAll, 65000));
  EXPECT_FALSE(checked_tx_header(gso_header(gso::kTcpV4 | gso::kEcn), kAll, 65000));
  EXPECT_FALSE(checked_tx_header(gso_header(7), kAll, 65000));
  // Unknown flag bits, DATA_VALID included (receive only).
  Header flags = gso_header(gso::kNone);
  flags.flags |= header_flag::kDataValid;
  EXPECT_FALSE(checked_tx_header(flags, kAll, 100));
  flags.flags = 0x80;
  EXPECT_FALSE(checked_tx_header(flags, kAll, 100));
}

TEST(NetHeader, TransmitHeadersThatDoNotFitTheFrameAreRefused) {
  // The checksum field must lie inside the frame: 34 + 16 + 2 = 52 bytes.
  EXPECT_TRUE(checked_tx_header(gso_header(gso::kNone), kAll, 52));
  EXPECT_FALSE(checked_tx_header(gso_header(gso::kNone), kAll, 51));
  Header far = gso_header(gso::kNone);
  far.csum_start = 0xffff;
  far.csum_offset = 0xffff;
  EXPECT_FALSE(checked_tx_header(far, kAll, 65000));
  // Segmentation needs a segment size, a partial checksum and headers inside the frame.
  EXPECT_FALSE(checked_tx_header(gso_header(gso::kTcpV4, 54, 0), kAll, 65000));
  Header no_csum = gso_header(gso::kTcpV4);
  no_csum.flags = 0;
  EXPECT_FALSE(checked_tx_header(no_csum, kAll, 65000));
  EXPECT_FALSE(checked_tx_header(gso_header(gso::kTcpV4, 2000), kAll, 1000));
}

TEST(NetHeader, ReceiveHeadersAreCutToWhatTheGuestTakes) {
  // Everything negotiated: the TAP's header passes, with num_buffers 1.
  Header from_tap = gso_header(gso::kTcpV4);
  from_tap.num_buffers = 0x5555;  // the TAP leaves these two bytes alone
  auto h = guest_rx_header(from_tap, kAll);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->gso_type, gso::kTcpV4);
  EXPECT_EQ(h->num_buffers, 1);
  // A checksum the kernel verified is reported only with GUEST_CSUM.
  Header valid{};
  valid.flags = header_flag::kDataValid;
  EXPECT_EQ(guest_rx_header(valid, kAll)->flags, header_flag::kDataValid);
  EXPECT_EQ(guest_rx_header(valid, 0)->flags, 0);
  // A frame needing an offload the guest did not negotiate is dropped.
  EXPECT_FALSE(guest_rx_header(gso_header(gso::kTcpV4), feature::kGuestCsum | feature::kGuestTso6));
  EXPECT_FALSE(guest_rx_header(gso_header(gso::kTcpV6), feature::kGuestTso6));  // without GUEST_CSUM
  EXPECT_FALSE(guest_rx_header(gso_header(gso::kNone), 0));  // a partial checksum
  EXPECT_FALSE(guest_rx_header(gso_header(gso::kUdp), kAll));
  // Nothing asked: passes whatever was negotiated.
  EXPECT_EQ(guest_rx_header(Header{}, 0)->num_buffers, 1);
}

}  // namespace
}  // namespace forkvm::virtio_net
