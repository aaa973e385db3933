#include "devices/virtio/vsock/connection.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace forkvm::vsock {
namespace {

constexpr uint64_t kCid = 3;
constexpr uint32_t kLocal = 1u << 30;
constexpr uint32_t kPeer = 5000;

Header from_guest(uint16_t operation, uint32_t buf_alloc = 65536, uint32_t fwd_cnt = 0) {
  Header h;
  h.src_cid = kCid;
  h.dst_cid = kHostCid;
  h.src_port = kPeer;
  h.dst_port = kLocal;
  h.type = type::kStream;
  h.op = operation;
  h.buf_alloc = buf_alloc;
  h.fwd_cnt = fwd_cnt;
  return h;
}

// A host-initiated connection the guest accepted, with its REQUEST already taken.
Connection established(Clock::time_point now, uint32_t guest_buf = 65536) {
  Connection c = Connection::host_initiated(kCid, kLocal, kPeer, now);
  auto req = c.next_control();
  EXPECT_TRUE(req);
  EXPECT_EQ(c.on_guest_packet(from_guest(op::kResponse, guest_buf), {}, now),
            GuestAction::kConnected);
  return c;
}

TEST(VsockConnection, HostInitiatedSendsRequestThenConnectsOnResponse) {
  const auto now = Clock::now();
  Connection c = Connection::host_initiated(kCid, kLocal, kPeer, now);
  EXPECT_EQ(c.state(), ConnState::kConnecting);
  EXPECT_FALSE(c.can_send_data());
  auto req = c.next_control();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->op, op::kRequest);
  EXPECT_EQ(req->src_cid, kHostCid);
  EXPECT_EQ(req->dst_cid, kCid);
  EXPECT_EQ(req->src_port, kLocal);
  EXPECT_EQ(req->dst_port, kPeer);
  EXPECT_EQ(req->type, type::kStream);
  EXPECT_EQ(req->buf_alloc, Connection::kBufAlloc);
  EXPECT_FALSE(c.next_control());
  EXPECT_EQ(c.on_guest_packet(from_guest(op::kResponse), {}, now), GuestAction::kConnected);
  EXPECT_EQ(c.state(), ConnState::kEstablished);
  EXPECT_TRUE(c.can_send_data());
  EXPECT_FALSE(c.deadline());
}

TEST(VsockConnection, UnansweredRequestTimesOutWithRst) {
  const auto now = Clock::now();
  Connection c = Connection::host_initiated(kCid, kLocal, kPeer, now);
  (void)c.next_control();
  c.on_timer(now + Connection::kRequestTimeout - std::chrono::milliseconds(1));
  EXPECT_EQ(c.state(), ConnState::kConnecting);
  c.on_timer(now + Connection::kRequestTimeout);
  EXPECT_EQ(c.state(), ConnState::kDead);
  auto rst = c.next_control();
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->op, op::kRst);
  EXPECT_TRUE(c.finished());
}

TEST(VsockConnection, GuestRstEndsWithoutAnswer) {
  const auto now = Clock::now();
  Connection c = Connection::host_initiated(kCid, kLocal, kPeer, now);
  (void)c.next_control();
  c.on_guest_packet(from_guest(op::kRst), {}, now);
  EXPECT_TRUE(c.finished());
  EXPECT_FALSE(c.next_control());
}

TEST(VsockConnection, GuestInitiatedSendsResponseBeforeAnyData) {
  Header req = from_guest(op::kRequest, 100, 0);
  req.dst_port = 52;
  Connection c = Connection::guest_initiated(req);
  EXPECT_EQ(c.local_port(), 52u);
  EXPECT_EQ(c.peer_port(), kPeer);
  EXPECT_FALSE(c.can_send_data());  // RESPONSE still queued
  auto resp = c.next_control();
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->op, op::kResponse);
  EXPECT_EQ(resp->src_port, 52u);
  EXPECT_TRUE(c.can_send_data());
  EXPECT_EQ(c.peer_credit(), 100u);
}

TEST(VsockConnection, PeerCreditFollowsBufAllocAndFwdCnt) {
  const auto now = Clock::now();
  Connection c = established(now, 1000);
  EXPECT_EQ(c.peer_credit(), 1000u);
  Header d = c.data_packet(600);
  EXPECT_EQ(d.op, op::kRw);
  EXPECT_EQ(d.len, 600u);
  EXPECT_EQ(c.peer_credit(), 400u);
  (void)c.data_packet(400);
  EXPECT_EQ(c.peer_credit(), 0u);  // exhausted: the owner stops reading the host socket
  c.on_guest_packet(from_guest(op::kCreditUpdate, 1000, 700), {}, now);
  EXPECT_EQ(c.peer_credit(), 700u);
  // A guest that claims to have consumed more than we sent: no credit, not a huge one.
  c.on_guest_packet(from_guest(op::kCreditUpdate, 1000, 5000), {}, now);
  EXPECT_EQ(c.peer_credit(), 0u);
  // Huge buf_alloc is capped at one packet's worth.
  c.on_guest_packet(from_guest(op::kCreditUpdate, 0xFFFFFFFF, 1000), {}, now);
  EXPECT_EQ(c.peer_credit(), kMaxPayload);
}

TEST(VsockConnection, PeerCreditWrapsAroundU32) {
  Header req = from_guest(op::kRequest, 4096, 0xFFFFFF00u);
  Connection c = Connection::guest_initiated(req);
  (void)c.next_control();
  // tx_cnt is 0 and the guest's fwd_cnt 2^32 - 256: free-running counters, so 256 bytes are
  // in flight (0 - 0xFFFFFF00 wraps), not 2^32 - 256.
  EXPECT_EQ(c.peer_credit(), 4096u - 256u);
  Header req2 = from_guest(op::kRequest, 4096, 0);
  Connection c2 = Connection::guest_initiated(req2);
  (void)c2.next_control();
  for (int i = 0; i < 3; ++i) (void)c2.data_packet(1000);
  c2.on_guest_packet(from_guest(op::kCreditUpdate, 4096, 3000), {}, Clock::now());
  EXPECT_EQ(c2.peer_credit(), 4096u);
}

TEST(VsockConnection, GuestDataWithinAdvertisedCreditIsBuffered) {
  const auto now = Clock::now();
  Connection c = established(now);
  std::vector<uint8_t> chunk(4096, 0xAB);
  for (uint32_t i = 0; i < Connection::kBufAlloc / 4096; ++i) {
    c.on_guest_packet(from_guest(op::kRw), chunk, now);
    ASSERT_EQ(c.state(), ConnState::kEstablished) << "chunk " << i;
  }
  EXPECT_EQ(c.to_host().size(), Connection::kBufAlloc);
  EXPECT_EQ(c.rx_cnt(), Connection::kBufAlloc);
  // The host socket takes 1000 bytes: fwd_cnt advances, the guest's view is below threshold.
  c.on_host_consumed(1000, now);
  EXPECT_EQ(c.fwd_cnt(), 1000u);
  EXPECT_EQ(c.to_host().size(), Connection::kBufAlloc - 1000);
  auto upd = c.next_control();
  ASSERT_TRUE(upd);
  EXPECT_EQ(upd->op, op::kCreditUpdate);
  EXPECT_EQ(upd->fwd_cnt, 1000u);
  EXPECT_EQ(upd->buf_alloc, Connection::kBufAlloc);
  // Now 1000 bytes of credit were advertised: exactly that is fine.
  std::vector<uint8_t> exact(1000, 1);
  c.on_guest_packet(from_guest(op::kRw), exact, now);
  EXPECT_EQ(c.state(), ConnState::kEstablished);
}

TEST(VsockConnection, GuestDataBeyondAdvertisedCreditIsRst) {
  const auto now = Clock::now();
  std::vector<uint8_t> chunk(Connection::kBufAlloc, 1);
  std::vector<uint8_t> one(1, 1);
  Connection c2 = established(now);
  c2.on_guest_packet(from_guest(op::kRw), chunk, now);
  ASSERT_EQ(c2.state(), ConnState::kEstablished);
  // Consumed on the host but not yet advertised: the guest may not use that space yet.
  c2.on_host_consumed(Connection::kBufAlloc, now);
  c2.on_guest_packet(from_guest(op::kRw), one, now);
  EXPECT_EQ(c2.state(), ConnState::kDead);
  EXPECT_TRUE(c2.to_host().empty());
  auto rst = c2.next_control();
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->op, op::kRst);
}

TEST(VsockConnection, CreditRequestIsAnswered) {
  const auto now = Clock::now();
  Connection c = established(now);
  EXPECT_FALSE(c.has_control());
  c.on_guest_packet(from_guest(op::kCreditRequest), {}, now);
  auto upd = c.next_control();
  ASSERT_TRUE(upd);
  EXPECT_EQ(upd->op, op::kCreditUpdate);
}

TEST(VsockConnection, DataBeforeResponseOrSecondRequestIsRst) {
  const auto now = Clock::now();
  Connection c = Connection::host_initiated(kCid, kLocal, kPeer, now);
  std::vector<uint8_t> data(10, 1);
  c.on_guest_packet(from_guest(op::kRw), data, now);
  EXPECT_EQ(c.state(), ConnState::kDead);
  Connection c2 = established(now);
  c2.on_guest_packet(from_guest(op::kRequest), {}, now);
  EXPECT_EQ(c2.state(), ConnState::kDead);
  Connection c3 = established(now);
  c3.on_guest_packet(from_guest(op::kResponse), {}, now);
  EXPECT_EQ(c3.state(), ConnState::kDead);
}

TEST(VsockConnection, GuestHalfCloseShutsTheHostWriteSideAfterFlush) {
  const auto now = Clock::now();
  Connection c = established(now);
  std::vector<uint8_t> data(10, 1);
  c.on_guest_packet(from_guest(op::kRw), data, now);
  Header shut = from_guest(op::kShutdown);
  shut.flags = shutdown::kSend;
  c.on_guest_packet(shut, {}, now);
  EXPECT_EQ(c.state(), ConnState::kEstablished);
  EXPECT_FALSE(c.wants_host_write_shut());  // 10 bytes still to deliver
  c.on_host_consumed(10, now);
  EXPECT_TRUE(c.wants_host_write_shut());
  c.mark_host_write_shut();
  EXPECT_FALSE(c.wants_host_write_shut());
  // We may still send to the guest: it only stopped sending.
  EXPECT_TRUE(c.can_send_data());
  // More data after SHUTDOWN(SEND) is a protocol error.
  c.on_guest_packet(from_guest(op::kRw), data, now);
  EXPECT_EQ(c.state(), ConnState::kDead);
}

TEST(VsockConnection, GuestShutRcvStopsOurData) {
  const auto now = Clock::now();
  Connection c = established(now);
  Header shut = from_guest(op::kShutdown);
  shut.flags = shutdown::kRcv;
  c.on_guest_packet(shut, {}, now);
  EXPECT_FALSE(c.can_send_data());
  EXPECT_EQ(c.peer_credit(), 0u);
}

TEST(VsockConnection, GuestFullShutdownIsAnsweredWithRstAfterFlush) {
  const auto now = Clock::now();
  Connection c = established(now);
  std::vector<uint8_t> data(10, 1);
  c.on_guest_packet(from_guest(op::kRw), data, now);
  Header shut = from_guest(op::kShutdown);
  shut.flags = shutdown::kBoth;
  c.on_guest_packet(shut, {}, now);
  EXPECT_EQ(c.state(), ConnState::kEstablished);  // 10 bytes to deliver first
  ASSERT_TRUE(c.deadline());
  c.on_host_consumed(10, now);
  EXPECT_EQ(c.state(), ConnState::kDead);
  EXPECT_EQ(c.next_control()->op, op::kRst);
  EXPECT_TRUE(c.finished());
}

TEST(VsockConnection, GuestFullShutdownWithStuckHostTimesOut) {
  const auto now = Clock::now();
  Connection c = established(now);
  std::vector<uint8_t> data(10, 1);
  c.on_guest_packet(from_guest(op::kRw), data, now);
  Header shut = from_guest(op::kShutdown);
  shut.flags = shutdown::kBoth;
  c.on_guest_packet(shut, {}, now);
  c.on_timer(now + Connection::kShutdownTimeout);
  EXPECT_EQ(c.state(), ConnState::kDead);
}

TEST(VsockConnection, HostHalfCloseSendsShutdownSendAndKeepsReceiving) {
  const auto now = Clock::now();
  Connection c = established(now);
  c.on_host_eof(false, now);
  auto shut = c.next_control();
  ASSERT_TRUE(shut);
  EXPECT_EQ(shut->op, op::kShutdown);
  EXPECT_EQ(shut->flags, shutdown::kSend);
  EXPECT_FALSE(c.can_send_data());
  EXPECT_EQ(c.state(), ConnState::kEstablished);
  std::vector<uint8_t> data(10, 1);
  c.on_guest_packet(from_guest(op::kRw), data, now);
  EXPECT_EQ(c.state(), ConnState::kEstablished);
  EXPECT_EQ(c.to_host().size(), 10u);
  // The guest then closes its side too: once delivered, the connection ends with RST.
  Header gs = from_guest(op::kShutdown);
  gs.flags = shutdown::kSend;
  c.on_guest_packet(gs, {}, now);
  EXPECT_NE(c.state(), ConnState::kDead);
  c.on_host_consumed(10, now);
  EXPECT_EQ(c.state(), ConnState::kDead);
  EXPECT_EQ(c.next_control()->op, op::kRst);
}

TEST(VsockConnection, HostFullCloseWaitsForGuestRstThenTimesOut) {
  const auto now = Clock::now();
  Connection c = established(now);
  c.on_host_eof(true, now);
  EXPECT_EQ(c.state(), ConnState::kClosing);
  auto shut = c.next_control();
  ASSERT_TRUE(shut);
  EXPECT_EQ(shut->flags, shutdown::kBoth);
  EXPECT_FALSE(c.finished());
  c.on_timer(now + Connection::kShutdownTimeout - std::chrono::milliseconds(1));
  EXPECT_EQ(c.state(), ConnState::kClosing);
  c.on_timer(now + Connection::kShutdownTimeout);
  EXPECT_EQ(c.next_control()->op, op::kRst);
  EXPECT_TRUE(c.finished());

  Connection c2 = established(now);
  c2.on_host_eof(true, now);
  (void)c2.next_control();
  c2.on_guest_packet(from_guest(op::kRst), {}, now);
  EXPECT_TRUE(c2.finished());
}

TEST(VsockConnection, HostGoneBeforeResponseIsRst) {
  const auto now = Clock::now();
  Connection c = Connection::host_initiated(kCid, kLocal, kPeer, now);
  (void)c.next_control();
  c.on_host_eof(true, now);
  EXPECT_EQ(c.next_control()->op, op::kRst);
}

TEST(VsockConnection, EveryHeaderCarriesTheCurrentFwdCnt) {
  const auto now = Clock::now();
  Connection c = established(now);
  std::vector<uint8_t> data(100, 1);
  c.on_guest_packet(from_guest(op::kRw), data, now);
  c.on_host_consumed(100, now);
  Header d = c.data_packet(5);
  EXPECT_EQ(d.fwd_cnt, 100u);
  EXPECT_EQ(d.buf_alloc, Connection::kBufAlloc);
}

}  // namespace
}  // namespace forkvm::vsock
