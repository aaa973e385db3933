#include "devices/virtio/vsock/muxer.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/text.hpp"
#include "devices/virtio/vsock/connect_line.hpp"
#include "devices/virtio/vsock/vsock_error.hpp"

namespace forkvm::vsock {

VsockMuxer::VsockMuxer(uint64_t guest_cid, const UnixListener& listener, EpollSet& epoll)
    : guest_cid_(guest_cid), listener_(listener), epoll_(epoll), scratch_(kMaxPayload) {
  if (!epoll_.add(listener_.fd(), EPOLLIN, kListenerToken)) {
    throw VsockError("vsock socket " + listener_.path() + ": epoll add: " + errno_text(errno));
  }
}

VsockMuxer::~VsockMuxer() {
  epoll_.remove(listener_.fd());
  for (auto& [key, e] : conns_) {
    if (e->registered) epoll_.remove(e->sock.get());
  }
  for (auto& [token, p] : pending_) epoll_.remove(p.sock.get());
  // Fds close with the maps.
}

// ---- epoll events ----

void VsockMuxer::on_event(uint64_t token, uint32_t events, Clock::time_point now) {
  if (token == kListenerToken) {
    on_listener(now);
  } else if (pending_.contains(token)) {
    on_pending(token, now);
  } else if (auto it = by_token_.find(token); it != by_token_.end()) {
    auto c = conns_.find(it->second);
    if (c != conns_.end()) on_connection(*c->second, events, now);
  }
}

void VsockMuxer::on_listener(Clock::time_point now) {
  // Accept while there is room; the rest waits in the kernel's backlog and sync() pauses the
  // listener so level-triggered EPOLLIN does not spin on it.
  while (pending_.size() < kMaxPendingConnects &&
         conns_.size() + pending_.size() < kMaxConnections) {
    errno = 0;
    Fd sock = listener_.accept();
    if (!sock) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) accept_retry_at_ = now + kAcceptRetry;
      return;
    }
    const uint64_t token = next_token_++;
    if (!epoll_.add(sock.get(), EPOLLIN, token)) continue;  // closes sock
    pending_.emplace(token, PendingConnect{std::move(sock), {}, now + kConnectLineTimeout});
  }
}

void VsockMuxer::on_pending(uint64_t token, Clock::time_point now) {
  PendingConnect& p = pending_.at(token);
  // One byte at a time, like Firecracker: nothing after the '\n' is consumed, so bytes a
  // client sends early stay in the socket for the connection. Host-controlled input, bounded by
  // kMaxConnectLine.
  while (p.line.size() < kMaxConnectLine && (p.line.empty() || p.line.back() != '\n')) {
    uint8_t byte = 0;
    const IoResult r = read_some(p.sock.get(), std::span<uint8_t>(&byte, 1));
    if (r.would_block) return;  // wait for more, within the deadline
    if (r.bytes != 1) {         // EOF or error before the line was complete
      close_pending(token);
      return;
    }
    p.line.push_back(static_cast<char>(byte));
  }
  const auto port = parse_connect_line(p.line);
  const auto local = port ? allocate_local_port(*port) : std::nullopt;
  if (!port || !local || conns_.size() >= kMaxConnections) {
    close_pending(token);  // malformed, overlong, or no room: the host program sees EOF
    return;
  }
  Fd sock = std::move(p.sock);
  epoll_.remove(sock.get());
  pending_.erase(token);
  insert(Connection::host_initiated(guest_cid_, *local, *port, now), std::move(sock));
}

void VsockMuxer::close_pending(uint64_t token) noexcept {
  auto it = pending_.find(token);
  if (it == pending_.end()) return;
  epoll_.remove(it->second.sock.get());
  pending_.erase(it);
}

void VsockMuxer::on_connection(Entry& e, uint32_t events, Clock::time_point now) {
  if (events & (EPOLLHUP | EPOLLERR)) {
    // Always reported whatever the interest: take the fd out of the set and latch it.
    e.hup = true;
    e.readable = true;
    if (e.registered) {
      epoll_.remove(e.sock.get());
      e.registered = false;
    }
    if (e.conn.state() == ConnState::kConnecting) {
      e.conn.kill();  // the host program left before the guest answered
      return;
    }
    flush_to_host(e, now);  // fails with EPIPE if it is really gone: RST
    // A socket we will never read again (guest shut its receive side, no data path) would
    // otherwise never learn the end of stream.
    if (!e.conn.can_send_data()) e.conn.on_host_eof(true, now);
    return;
  }
  if (events & EPOLLIN) e.readable = true;
  if (events & EPOLLOUT) flush_to_host(e, now);
}

// ---- guest packets ----

void VsockMuxer::on_guest_packet(const Header& h, std::span<const uint8_t> payload,
                                 Clock::time_point now) {
  const Key key{h.dst_port, h.src_port};
  auto it = conns_.find(key);
  if (it == conns_.end()) {
    if (h.op == op::kRequest) {
      guest_request(h);
    } else if (h.op != op::kRst) {
      queue_loose_rst(h);  // virtio 1.2 §5.10.6.2: no such connection
    }
    return;
  }
  Entry& e = *it->second;
  if (e.conn.on_guest_packet(h, payload, now) == GuestAction::kConnected) {
    // Firecracker protocol: only now does the host program learn its local port. A fresh
    // socket has an empty send buffer, so a short write means the socket is unusable.
    const std::string ok = format_ok_line(e.conn.local_port());
    const auto bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ok.data()),
                                                ok.size());
    if (write_some(e.sock.get(), bytes).bytes != ok.size()) e.conn.kill();
  }
  flush_to_host(e, now);
}

void VsockMuxer::guest_request(const Header& h) {
  if (conns_.size() + pending_.size() >= kMaxConnections) {
    queue_loose_rst(h);
    return;
  }
  // Guest-controlled: dst_port, any u32; it only selects a path under our own uds_path.
  Fd sock = connect_unix(listener_.path() + "_" + std::to_string(h.dst_port));
  if (!sock || !insert(Connection::guest_initiated(h), std::move(sock))) queue_loose_rst(h);
}

bool VsockMuxer::insert(Connection conn, Fd sock) {
  const Key key{conn.local_port(), conn.peer_port()};
  const uint64_t token = next_token_++;
  // Registered with no interest at first: HUP/ERR are still reported; sync() sets the rest.
  if (!epoll_.add(sock.get(), 0, token)) return false;
  auto e = std::make_unique<Entry>(Entry{std::move(conn), std::move(sock), token});
  e->registered = true;
  by_token_.emplace(token, key);
  conns_.emplace(key, std::move(e));
  return true;
}

namespace {

// True when the host program has sent nothing the device has not read yet and has not closed:
// a connection whose host bytes are still (partly) in the socket is not at a boundary the
// copies could start from, as part of a message may already be in the guest.
bool host_socket_idle(int fd) noexcept {
  char c = 0;
  const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

VsockMuxer::Exported VsockMuxer::export_connections(std::span<const CarryPort> carry) const {
  Exported out;
  for (const auto& [key, e] : conns_) {
    std::optional<Connection::Carried> c;
    const uint32_t guest_port = key.second;  // Clang 14 cannot capture a structured binding
    const auto port = std::find_if(carry.begin(), carry.end(), [guest_port](const CarryPort& p) {
      return p.guest_port == guest_port;
    });
    if (port != carry.end() && host_socket_idle(e->sock.get())) {
      c = e->conn.carried();
      if (c) c->tag = port->tag;
    }
    if (c) {
      out.carried.push_back(*c);
    } else if (e->conn.state() != ConnState::kDead) {
      out.stale.emplace_back(key.first, key.second);
    }
  }
  return out;
}

bool VsockMuxer::adopt(const Connection::Carried& carried, Fd sock) {
  if (conns_.contains(Key{carried.local_port, carried.peer_port})) return false;
  return insert(Connection::resume(guest_cid_, carried), std::move(sock));
}

void VsockMuxer::reset_stale(uint32_t local_port, uint32_t peer_port) {
  loose_rsts_.push_back(rst_header(local_port, peer_port, type::kStream));
}

Header VsockMuxer::rst_header(uint32_t local_port, uint32_t peer_port, uint16_t socket_type) const {
  Header r;
  r.src_cid = kHostCid;
  r.dst_cid = guest_cid_;
  r.src_port = local_port;
  r.dst_port = peer_port;
  r.type = socket_type;
  r.op = op::kRst;
  return r;
}

std::optional<uint32_t> VsockMuxer::allocate_local_port(uint32_t peer_port) {
  for (size_t attempt = 0; attempt <= kMaxConnections; ++attempt) {
    const uint32_t port = next_local_port_;
    next_local_port_ = port + 1 == kEndLocalPort ? kFirstLocalPort : port + 1;
    if (!conns_.contains(Key{port, peer_port})) return port;
  }
  return std::nullopt;
}

void VsockMuxer::refuse(const Header& h) {
  if (h.type == type::kStream) {
    auto it = conns_.find(Key{h.dst_port, h.src_port});
    if (it != conns_.end()) {
      it->second->conn.kill();
      return;
    }
  }
  queue_loose_rst(h);
}

void VsockMuxer::queue_loose_rst(const Header& offending) {
  if (offending.op == op::kRst) return;           // never answer an RST
  if (loose_rsts_.size() >= kMaxLooseRsts) return;  // backlogged() stops TX before this
  loose_rsts_.push_back(rst_header(offending.dst_port, offending.src_port, offending.type));
}

void VsockMuxer::flush_to_host(Entry& e, Clock::time_point now) {
  while (!e.conn.to_host().empty()) {
    const IoResult r = write_some(e.sock.get(), e.conn.to_host());
    if (r.bytes > 0) {
      e.conn.on_host_consumed(r.bytes, now);
      continue;
    }
    if (r.error) e.conn.kill();  // EPIPE / ECONNRESET: the host program is gone
    break;                       // would_block: sync() watches EPOLLOUT
  }
  if (e.conn.wants_host_write_shut()) {
    ::shutdown(e.sock.get(), SHUT_WR);  // guest SHUTDOWN(SEND) reaches the host as EOF
    e.conn.mark_host_write_shut();
  }
}

// ---- RX: packets for the guest ----

bool VsockMuxer::has_rx_work() const noexcept {
  if (!loose_rsts_.empty()) return true;
  return std::any_of(conns_.begin(), conns_.end(), [](const auto& kv) {
    const Entry& e = *kv.second;
    return e.conn.has_control() || (e.readable && e.conn.peer_credit() > 0);
  });
}

std::optional<VsockMuxer::RxPacket> VsockMuxer::next_rx(size_t max_payload,
                                                        Clock::time_point now) {
  if (!loose_rsts_.empty()) {
    const Header h = loose_rsts_.front();
    loose_rsts_.pop_front();
    return RxPacket{h, {}};
  }
  for (auto& [key, e] : conns_) {
    if (auto h = e->conn.next_control()) return RxPacket{*h, {}};
  }
  return next_data(max_payload, now);
}

std::optional<VsockMuxer::RxPacket> VsockMuxer::next_data(size_t max_payload,
                                                          Clock::time_point now) {
  if (conns_.empty() || max_payload == 0) return std::nullopt;
  // Round-robin: start after the connection served last, so one busy socket cannot starve
  // the others.
  auto start = last_data_key_ ? conns_.upper_bound(*last_data_key_) : conns_.begin();
  if (start == conns_.end()) start = conns_.begin();
  auto it = start;
  do {
    Entry& e = *it->second;
    const uint32_t credit = e.conn.peer_credit();
    if (e.readable && credit > 0) {
      const size_t want = std::min({static_cast<size_t>(credit), max_payload, scratch_.size()});
      const IoResult r = read_some(e.sock.get(), scratch_.span().first(want));
      if (r.bytes > 0) {
        last_data_key_ = it->first;
        const Header h = e.conn.data_packet(static_cast<uint32_t>(r.bytes));
        return RxPacket{h, std::span<const uint8_t>(scratch_.span().first(r.bytes))};
      }
      e.readable = false;
      if (r.eof) e.conn.on_host_eof(e.hup || peer_hung_up(e.sock.get()), now);
      if (r.error) e.conn.kill();
      if (auto h = e.conn.next_control()) return RxPacket{*h, {}};
    }
    if (++it == conns_.end()) it = conns_.begin();
  } while (it != start);
  return std::nullopt;
}

// ---- timers and interest ----

void VsockMuxer::on_timer(Clock::time_point now) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (now >= it->second.deadline) {
      epoll_.remove(it->second.sock.get());
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [key, e] : conns_) e->conn.on_timer(now);
  if (accept_retry_at_ && now >= *accept_retry_at_) accept_retry_at_.reset();
}

std::optional<Clock::time_point> VsockMuxer::next_deadline() const noexcept {
  std::optional<Clock::time_point> best = accept_retry_at_;
  auto consider = [&best](Clock::time_point t) {
    if (!best || t < *best) best = t;
  };
  for (const auto& [token, p] : pending_) consider(p.deadline);
  for (const auto& [key, e] : conns_) {
    if (auto d = e->conn.deadline()) consider(*d);
  }
  return best;
}

uint32_t VsockMuxer::desired_interest(const Entry& e) const noexcept {
  uint32_t ev = 0;
  if (!e.readable && e.conn.peer_credit() > 0) ev |= EPOLLIN;
  if (!e.conn.to_host().empty()) ev |= EPOLLOUT;
  return ev;
}

void VsockMuxer::sync(Clock::time_point now) noexcept {
  (void)now;
  for (auto it = conns_.begin(); it != conns_.end();) {
    Entry& e = *it->second;
    if (e.conn.finished()) {
      if (e.registered) epoll_.remove(e.sock.get());
      by_token_.erase(e.token);
      if (last_data_key_ == it->first) last_data_key_.reset();
      it = conns_.erase(it);  // closes the socket: the host program sees EOF
      continue;
    }
    if (e.registered) {
      const uint32_t want = desired_interest(e);
      if (want != e.interest && epoll_.modify(e.sock.get(), want, e.token)) e.interest = want;
    }
    ++it;
  }
  const bool full = pending_.size() >= kMaxPendingConnects ||
                    conns_.size() + pending_.size() >= kMaxConnections;
  const bool pause = full || accept_retry_at_.has_value();
  if (pause != listener_paused_ &&
      epoll_.modify(listener_.fd(), pause ? 0u : uint32_t{EPOLLIN}, kListenerToken)) {
    listener_paused_ = pause;
  }
}

}  // namespace forkvm::vsock
