#include "devices/virtio/vsock/connection.hpp"

#include <algorithm>

namespace forkvm::vsock {

Connection::Connection(uint64_t guest_cid, uint32_t local_port, uint32_t peer_port,
                       ConnState state, uint8_t pending) noexcept
    : guest_cid_(guest_cid),
      local_port_(local_port),
      peer_port_(peer_port),
      state_(state),
      pending_(pending) {}

Connection Connection::host_initiated(uint64_t guest_cid, uint32_t local_port,
                                      uint32_t peer_port, Clock::time_point now) {
  Connection c(guest_cid, local_port, peer_port, ConnState::kConnecting, kPendRequest);
  // The deadline runs from now, not from when the REQUEST reaches the guest: a guest that
  // posts no RX buffers must not keep a host program waiting forever.
  c.deadline_ = now + kRequestTimeout;
  return c;
}

Connection Connection::guest_initiated(const Header& req) {
  // The guest's REQUEST is "from" the guest port src_port "to" our port dst_port.
  Connection c(req.src_cid, req.dst_port, req.src_port, ConnState::kEstablished, kPendResponse);
  c.peer_buf_alloc_ = req.buf_alloc;  // Guest-controlled: only limits what we send.
  c.peer_fwd_cnt_ = req.fwd_cnt;
  return c;
}

std::optional<Connection::Carried> Connection::carried() const noexcept {
  constexpr uint8_t kOnlyCredit = kPendCreditUpdate;
  if (state_ != ConnState::kEstablished || (pending_ & ~kOnlyCredit) != 0 || peer_shut_ != 0 ||
      local_shut_ != 0 || host_write_shut_ || !to_host().empty() || rx_cnt_ != fwd_cnt_) {
    return std::nullopt;
  }
  return Carried{local_port_,    peer_port_,     fwd_cnt_,
                 advertised_fwd_, tx_cnt_,        peer_buf_alloc_,
                 peer_fwd_cnt_,   (pending_ & kPendCreditUpdate) != 0, 0};
}

Connection Connection::resume(uint64_t guest_cid, const Carried& c) noexcept {
  Connection conn(guest_cid, c.local_port, c.peer_port, ConnState::kEstablished,
                  c.credit_update_owed ? kPendCreditUpdate : 0);
  conn.rx_cnt_ = conn.fwd_cnt_ = c.fwd_cnt;
  conn.advertised_fwd_ = c.advertised_fwd;
  conn.tx_cnt_ = c.tx_cnt;
  conn.peer_buf_alloc_ = c.peer_buf_alloc;
  conn.peer_fwd_cnt_ = c.peer_fwd_cnt;
  return conn;
}

GuestAction Connection::on_guest_packet(const Header& h, std::span<const uint8_t> payload,
                                        Clock::time_point now) {
  if (state_ == ConnState::kDead) return GuestAction::kNone;  // RST already queued
  // Guest-controlled: buf_alloc and fwd_cnt. They only bound peer_credit(), which clamps.
  peer_buf_alloc_ = h.buf_alloc;
  peer_fwd_cnt_ = h.fwd_cnt;

  switch (h.op) {
    case op::kRst:
      // The guest ended the connection; nothing more is owed to it.
      state_ = ConnState::kDead;
      pending_ = 0;
      deadline_.reset();
      return GuestAction::kNone;
    case op::kResponse:
      if (state_ != ConnState::kConnecting) {
        kill();
        return GuestAction::kNone;
      }
      state_ = ConnState::kEstablished;
      deadline_.reset();
      return GuestAction::kConnected;
    case op::kRw:
      accept_data(payload, now);
      return GuestAction::kNone;
    case op::kShutdown:
      // Guest-controlled: flags. Unknown bits are ignored (virtio 1.2 §5.10.6.5 defines two).
      if (state_ == ConnState::kConnecting) {
        kill();
        return GuestAction::kNone;
      }
      peer_shut_ |= h.flags & shutdown::kBoth;
      if (peer_shut_ == shutdown::kBoth && !deadline_) deadline_ = now + kShutdownTimeout;
      maybe_finish(now);
      return GuestAction::kNone;
    case op::kCreditUpdate:
      return GuestAction::kNone;  // the credit was refreshed above
    case op::kCreditRequest:
      if (state_ != ConnState::kConnecting) pending_ |= kPendCreditUpdate;
      return GuestAction::kNone;
    default:
      // A second REQUEST on a live connection, or anything validate_tx() let through that
      // makes no sense here: the guest and we disagree about this connection.
      kill();
      return GuestAction::kNone;
  }
}

void Connection::accept_data(std::span<const uint8_t> payload, Clock::time_point now) {
  if (state_ != ConnState::kEstablished || (peer_shut_ & shutdown::kSend) ||
      (local_shut_ & shutdown::kRcv)) {
    kill();  // data before RESPONSE, after the guest's SHUTDOWN(SEND), or to a gone socket
    return;
  }
  // Guest-controlled: payload.size() (<= kMaxPayload, checked by validate_tx). The guest may
  // use only the credit we advertised: kBufAlloc - (rx_cnt - advertised_fwd). Anything more
  // is a protocol violation and would make to_host_ unbounded (Firecracker: TxBufFull -> RST).
  const uint32_t in_flight = rx_cnt_ - advertised_fwd_;  // wrapping, <= kBufAlloc by induction
  if (payload.size() > kBufAlloc - std::min(in_flight, kBufAlloc)) {
    kill();
    return;
  }
  to_host_.insert(to_host_.end(), payload.begin(), payload.end());
  rx_cnt_ += static_cast<uint32_t>(payload.size());
  refresh_credit_update();
  maybe_finish(now);
}

std::span<const uint8_t> Connection::to_host() const noexcept {
  return std::span<const uint8_t>(to_host_).subspan(to_host_head_);
}

void Connection::on_host_consumed(size_t n, Clock::time_point now) {
  n = std::min(n, to_host_.size() - to_host_head_);
  to_host_head_ += n;
  fwd_cnt_ += static_cast<uint32_t>(n);
  // Compact lazily: move the tail down only once the consumed prefix dominates.
  if (to_host_head_ == to_host_.size()) {
    to_host_.clear();
    to_host_head_ = 0;
  } else if (to_host_head_ > to_host_.size() / 2) {
    to_host_.erase(to_host_.begin(), to_host_.begin() + static_cast<std::ptrdiff_t>(to_host_head_));
    to_host_head_ = 0;
  }
  refresh_credit_update();
  maybe_finish(now);
}

void Connection::refresh_credit_update() noexcept {
  if (state_ != ConnState::kEstablished && state_ != ConnState::kClosing) return;
  const uint32_t guest_view_free = kBufAlloc - std::min(rx_cnt_ - advertised_fwd_, kBufAlloc);
  if (guest_view_free < kCreditUpdateThreshold && fwd_cnt_ != advertised_fwd_) {
    pending_ |= kPendCreditUpdate;
  }
}

bool Connection::wants_host_write_shut() const noexcept {
  return state_ != ConnState::kDead && !host_write_shut_ && (peer_shut_ & shutdown::kSend) &&
         to_host().empty();
}

void Connection::on_host_eof(bool full, Clock::time_point now) {
  if (state_ == ConnState::kDead) return;
  if (state_ == ConnState::kConnecting) {
    kill();  // the host program gave up before the guest answered
    return;
  }
  const uint32_t before = local_shut_;
  local_shut_ |= full ? shutdown::kBoth : shutdown::kSend;
  if (local_shut_ != before) pending_ |= kPendShutdown;
  if (local_shut_ == shutdown::kBoth) {
    state_ = ConnState::kClosing;
    if (!deadline_) deadline_ = now + kShutdownTimeout;
  }
  maybe_finish(now);
}

void Connection::maybe_finish(Clock::time_point now) noexcept {
  (void)now;
  if (state_ == ConnState::kDead || state_ == ConnState::kConnecting) return;
  // The guest closed both ways and everything it sent reached the host: answer with the RST
  // a full close expects (Linux waits for it, virtio 1.2 §5.10.6.5).
  if (peer_shut_ == shutdown::kBoth && to_host().empty()) {
    kill();
    return;
  }
  // Both sides announced they send nothing more and nothing is left to deliver.
  if ((peer_shut_ & shutdown::kSend) && (local_shut_ & shutdown::kSend) && to_host().empty()) {
    kill();
  }
}

void Connection::kill() noexcept {
  if (state_ == ConnState::kDead) return;
  state_ = ConnState::kDead;
  pending_ = kPendRst;  // the RST supersedes anything still queued
  deadline_.reset();
  to_host_.clear();
  to_host_head_ = 0;
}

bool Connection::can_send_data() const noexcept {
  return state_ == ConnState::kEstablished && !(pending_ & (kPendResponse | kPendRst)) &&
         !(local_shut_ & shutdown::kSend) && !(peer_shut_ & shutdown::kRcv);
}

uint32_t Connection::peer_credit() const noexcept {
  if (!can_send_data()) return 0;
  const uint32_t in_flight = tx_cnt_ - peer_fwd_cnt_;  // wrapping u32, virtio 1.2 §5.10.6.3
  if (in_flight >= peer_buf_alloc_) return 0;
  return std::min(peer_buf_alloc_ - in_flight, kMaxPayload);
}

Header Connection::make_header(uint16_t operation) noexcept {
  Header h;
  h.src_cid = kHostCid;
  h.dst_cid = guest_cid_;
  h.src_port = local_port_;
  h.dst_port = peer_port_;
  h.type = type::kStream;
  h.op = operation;
  h.buf_alloc = kBufAlloc;
  h.fwd_cnt = fwd_cnt_;
  // Every header carries fwd_cnt, so each one is a credit update (§5.10.6.3).
  advertised_fwd_ = fwd_cnt_;
  return h;
}

Header Connection::data_packet(uint32_t len) noexcept {
  Header h = make_header(op::kRw);
  h.len = len;
  tx_cnt_ += len;
  pending_ &= static_cast<uint8_t>(~kPendCreditUpdate);  // this header carries it
  return h;
}

std::optional<Header> Connection::next_control() noexcept {
  if (pending_ & kPendRst) {
    pending_ = 0;
    return make_header(op::kRst);
  }
  if (pending_ & kPendRequest) {
    pending_ &= static_cast<uint8_t>(~kPendRequest);
    return make_header(op::kRequest);
  }
  if (pending_ & kPendResponse) {
    pending_ &= static_cast<uint8_t>(~kPendResponse);
    return make_header(op::kResponse);
  }
  if (pending_ & kPendCreditUpdate) {
    pending_ &= static_cast<uint8_t>(~kPendCreditUpdate);
    return make_header(op::kCreditUpdate);
  }
  if (pending_ & kPendShutdown) {
    pending_ &= static_cast<uint8_t>(~kPendShutdown);
    Header h = make_header(op::kShutdown);
    h.flags = local_shut_;
    return h;
  }
  return std::nullopt;
}

void Connection::on_timer(Clock::time_point now) noexcept {
  if (deadline_ && now >= *deadline_) kill();
}

}  // namespace forkvm::vsock
