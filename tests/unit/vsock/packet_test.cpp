#include "devices/virtio/vsock/packet.hpp"

#include <gtest/gtest.h>

namespace forkvm::vsock {
namespace {

constexpr uint64_t kPacketCid = 3;

Header good_rw(uint32_t len) {
  Header h;
  h.src_cid = kPacketCid;
  h.dst_cid = kHostCid;
  h.src_port = 1000;
  h.dst_port = 52;
  h.len = len;
  h.type = type::kStream;
  h.op = op::kRw;
  h.buf_alloc = 65536;
  return h;
}

TEST(VsockPacket, EncodeIsPackedLittleEndian) {
  Header h;
  h.src_cid = 0x0102030405060708ull;
  h.dst_cid = 2;
  h.src_port = 0xAABBCCDD;
  h.dst_port = 0x11223344;
  h.len = 0x55;
  h.type = 1;
  h.op = 5;
  h.flags = 3;
  h.buf_alloc = 0x10000;
  h.fwd_cnt = 0xFFFFFFFF;
  const HeaderBytes b = encode(h);
  EXPECT_EQ(b[0], 0x08);  // src_cid low byte first
  EXPECT_EQ(b[7], 0x01);
  EXPECT_EQ(b[8], 0x02);  // dst_cid
  EXPECT_EQ(b[16], 0xDD);  // src_port
  EXPECT_EQ(b[20], 0x44);  // dst_port
  EXPECT_EQ(b[24], 0x55);  // len
  EXPECT_EQ(b[28], 0x01);  // type
  EXPECT_EQ(b[30], 0x05);  // op
  EXPECT_EQ(b[32], 0x03);  // flags
  EXPECT_EQ(b[38], 0x01);  // buf_alloc = 0x10000
  EXPECT_EQ(b[43], 0xFF);  // fwd_cnt high byte, the last of 44
  EXPECT_EQ(decode(b), h);
}

TEST(VsockPacket, AcceptsAWellFormedPacket) {
  EXPECT_EQ(validate_tx(good_rw(10), kPacketCid, 10), PacketError::kNone);
  EXPECT_EQ(validate_tx(good_rw(kMaxPayload), kPacketCid, kMaxPayload), PacketError::kNone);
  Header req = good_rw(0);
  req.op = op::kRequest;
  EXPECT_EQ(validate_tx(req, kPacketCid, 0), PacketError::kNone);
}

TEST(VsockPacket, RejectsSpoofedOrMisaddressedCids) {
  Header h = good_rw(0);
  h.src_cid = 4;
  EXPECT_EQ(validate_tx(h, kPacketCid, 0), PacketError::kBadSrcCid);
  h.src_cid = kPacketCid | (1ull << 32);  // the reserved upper half must be zero too
  EXPECT_EQ(validate_tx(h, kPacketCid, 0), PacketError::kBadSrcCid);
  h = good_rw(0);
  h.dst_cid = 1;
  EXPECT_EQ(validate_tx(h, kPacketCid, 0), PacketError::kBadDstCid);
  h.dst_cid = kPacketCid;  // guest to itself is not ours to carry
  EXPECT_EQ(validate_tx(h, kPacketCid, 0), PacketError::kBadDstCid);
  EXPECT_EQ(verdict_for(PacketError::kBadSrcCid, h), Verdict::kDrop);
  EXPECT_EQ(verdict_for(PacketError::kBadDstCid, h), Verdict::kDrop);
}

TEST(VsockPacket, RejectsSeqpacketAndUnknownTypesWithRst) {
  Header h = good_rw(0);
  h.op = op::kRequest;
  h.type = type::kSeqpacket;
  EXPECT_EQ(validate_tx(h, kPacketCid, 0), PacketError::kBadType);
  EXPECT_EQ(verdict_for(PacketError::kBadType, h), Verdict::kRst);
  h.type = 0;
  EXPECT_EQ(validate_tx(h, kPacketCid, 0), PacketError::kBadType);
}

TEST(VsockPacket, RejectsUnknownOpsButNeverAnswersAnRst) {
  Header h = good_rw(0);
  h.op = op::kInvalid;
  EXPECT_EQ(validate_tx(h, kPacketCid, 0), PacketError::kBadOp);
  h.op = 8;
  EXPECT_EQ(validate_tx(h, kPacketCid, 0), PacketError::kBadOp);
  EXPECT_EQ(verdict_for(PacketError::kBadOp, h), Verdict::kRst);
  Header rst = good_rw(0);
  rst.op = op::kRst;
  rst.type = 9;
  EXPECT_EQ(validate_tx(rst, kPacketCid, 0), PacketError::kBadType);
  EXPECT_EQ(verdict_for(PacketError::kBadType, rst), Verdict::kDrop);
}

TEST(VsockPacket, RejectsHugeAndInconsistentLengths) {
  EXPECT_EQ(validate_tx(good_rw(kMaxPayload + 1), kPacketCid, 1u << 20), PacketError::kLenTooLarge);
  EXPECT_EQ(validate_tx(good_rw(0xFFFFFFFF), kPacketCid, 1u << 20), PacketError::kLenTooLarge);
  EXPECT_EQ(validate_tx(good_rw(100), kPacketCid, 99), PacketError::kLenPastChain);
  EXPECT_EQ(validate_tx(good_rw(1), kPacketCid, 0), PacketError::kLenPastChain);
  Header h = good_rw(4);
  h.op = op::kCreditUpdate;
  EXPECT_EQ(validate_tx(h, kPacketCid, 4), PacketError::kLenOnControl);
  EXPECT_EQ(verdict_for(PacketError::kLenPastChain, h), Verdict::kRst);
  EXPECT_EQ(verdict_for(PacketError::kTruncated, h), Verdict::kDrop);
}

TEST(VsockPacket, EveryErrorHasAName) {
  for (int e = 0; e <= static_cast<int>(PacketError::kLenOnControl); ++e) {
    EXPECT_NE(to_string(static_cast<PacketError>(e)), "unknown");
  }
}

}  // namespace
}  // namespace forkvm::vsock
