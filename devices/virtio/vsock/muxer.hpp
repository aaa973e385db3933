// VsockMuxer: the table of vsock connections and the bridge to their host Unix sockets (after
// Firecracker's unix/muxer.rs). The worker gives it validated guest packets and epoll events,
// and asks it for the next packet to put on the guest's RX queue.
//
// Busy-loop rule: all fds are level-triggered, so an fd is only watched for what can be done
// now. EPOLLIN is watched only while the guest has credit and no readiness is already latched
// (`readable`); EPOLLOUT only while guest bytes wait for the socket; a socket that reported
// HUP/ERR (always reported, whatever the interest) is taken out of the set, its readiness
// latched. The listener is paused while the pending-CONNECT table is full or accept() failed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/scratch_buffer.hpp"
#include "devices/virtio/vsock/connection.hpp"
#include "devices/virtio/vsock/epoll_set.hpp"
#include "devices/virtio/vsock/packet.hpp"
#include "devices/virtio/vsock/unix_socket.hpp"

namespace forkvm::vsock {

/// Connections of one activation. Single-threaded: only the worker calls it.
class VsockMuxer {
 public:
  /// Most live connections, plus host sockets still sending their CONNECT line (Firecracker:
  /// MAX_CONNECTIONS 1023).
  static constexpr size_t kMaxConnections = 1023;
  /// Most accepted host sockets whose CONNECT line is still incomplete.
  static constexpr size_t kMaxPendingConnects = 64;
  /// Most RSTs for unknown connections waiting for RX buffers; at this mark the worker stops
  /// taking TX packets until the guest gives RX buffers (backpressure instead of loss).
  static constexpr size_t kMaxLooseRsts = 256;
  /// How long a host program has to send its whole CONNECT line.
  static constexpr std::chrono::milliseconds kConnectLineTimeout{2000};
  /// How long the listener pauses after accept() failed (EMFILE, ENOBUFS).
  static constexpr std::chrono::milliseconds kAcceptRetry{100};
  /// Host-initiated connections get local ports round-robin from [2^30, 2^31) (Firecracker).
  static constexpr uint32_t kFirstLocalPort = 1u << 30;
  static constexpr uint32_t kEndLocalPort = 1u << 31;
  /// epoll token of the listener; sockets get tokens from kFirstSocketToken upwards, never
  /// reused. Tokens below kListenerToken belong to the worker.
  static constexpr uint64_t kListenerToken = 8;
  static constexpr uint64_t kFirstSocketToken = 16;

  /// A packet for the guest's RX queue; `payload` stays valid until the next call.
  struct RxPacket {
    Header header;
    std::span<const uint8_t> payload;
  };

  /// Registers `listener` in `epoll`. Both must outlive the muxer. Throws VsockError when
  /// epoll refuses the listener.
  VsockMuxer(uint64_t guest_cid, const UnixListener& listener, EpollSet& epoll);
  /// Closes every connection socket (the host programs see EOF) and unregisters the listener.
  ~VsockMuxer();
  VsockMuxer(const VsockMuxer&) = delete;
  VsockMuxer& operator=(const VsockMuxer&) = delete;

  /// Whether `token` is the listener's or a socket's.
  static bool owns(uint64_t token) noexcept { return token >= kListenerToken; }
  /// Handles readiness `events` of the fd registered under `token`.
  void on_event(uint64_t token, uint32_t events, Clock::time_point now);
  /// Handles a guest packet that passed validate_tx(): to an existing connection, a new
  /// guest-initiated connection (REQUEST), or an RST answer for an unknown one.
  void on_guest_packet(const Header& h, std::span<const uint8_t> payload, Clock::time_point now);
  /// Handles a guest packet refused with Verdict::kRst: kills the stream connection it names,
  /// or answers with a loose RST (echoing its type, so a seqpacket socket learns it is refused).
  void refuse(const Header& h);
  /// Applies every deadline that passed (CONNECT lines, requests, closes, listener retry).
  void on_timer(Clock::time_point now);
  /// The earliest deadline, if any.
  std::optional<Clock::time_point> next_deadline() const noexcept;
  /// Brings every fd's interest set up to date and forgets finished connections (closing their
  /// sockets). The worker calls it once per loop iteration, after all other work.
  void sync(Clock::time_point now) noexcept;

  /// Whether TX processing should pause: the loose-RST queue is full.
  bool backlogged() const noexcept { return loose_rsts_.size() >= kMaxLooseRsts; }
  /// Whether next_rx() may have something: a queued control packet, or a readable socket whose
  /// guest has credit.
  bool has_rx_work() const noexcept;
  /// The next packet for the guest, payload at most `max_payload` bytes: loose RSTs first, then
  /// connection control packets, then data round-robin across readable connections (read from
  /// the socket straight into the returned payload, within the guest's credit). nullopt when
  /// nothing can be sent (a socket that latched readable may turn out to have nothing).
  std::optional<RxPacket> next_rx(size_t max_payload, Clock::time_point now);

  /// A guest port whose connections a capture carries, and the tag they carry with them.
  struct CarryPort {
    uint32_t guest_port = 0;
    uint32_t tag = 0;
  };
  /// The connection table for a capture (VsockDevice::save_state): the connections to a guest
  /// port in `carry` that can be carried (Connection::carried(), and no host bytes waiting
  /// unread in the socket, nor its end), tagged as `carry` says, and the
  /// (local_port, peer_port) of every other one, which a VM made from the capture resets.
  struct Exported {
    std::vector<Connection::Carried> carried;
    std::vector<std::pair<uint32_t, uint32_t>> stale;
  };
  Exported export_connections(std::span<const CarryPort> carry) const;
  /// Takes over a carried connection on host socket `sock` (one end of a socket pair). False
  /// when its (local, peer) ports are taken or epoll refuses the socket (the caller resets it).
  bool adopt(const Connection::Carried& carried, Fd sock);
  /// Queues an RST for a connection the guest holds and this table does not (a stale one from
  /// a capture), so the guest drops it. Not bounded by kMaxLooseRsts (the capture's table is).
  void reset_stale(uint32_t local_port, uint32_t peer_port);

  /// Live connections (not counting pending CONNECT lines).
  size_t connection_count() const noexcept { return conns_.size(); }

  /// The local port the next host-initiated connection will try first, in [kFirstLocalPort,
  /// kEndLocalPort). Carried across activations and snapshots so ports are not reused soon
  /// after a restore (Firecracker PR #5688).
  uint32_t next_local_port() const noexcept { return next_local_port_; }
  /// Sets it; a value outside [kFirstLocalPort, kEndLocalPort) restarts at kFirstLocalPort.
  void set_next_local_port(uint32_t port) noexcept {
    next_local_port_ = port >= kFirstLocalPort && port < kEndLocalPort ? port : kFirstLocalPort;
  }

 private:
  /// (local_port, peer_port): host port first, guest port second.
  using Key = std::pair<uint32_t, uint32_t>;
  struct Entry {
    Connection conn;
    Fd sock;
    uint64_t token;
    uint32_t interest = 0;    // events currently registered
    bool registered = false;  // in the epoll set
    bool readable = false;    // latched EPOLLIN (or HUP): a read may return something
    bool hup = false;         // latched HUP/ERR: out of the epoll set for good
  };
  struct PendingConnect {
    Fd sock;
    std::string line;
    Clock::time_point deadline;
  };

  void on_listener(Clock::time_point now);
  void on_pending(uint64_t token, Clock::time_point now);
  void on_connection(Entry& e, uint32_t events, Clock::time_point now);
  void guest_request(const Header& h);
  void queue_loose_rst(const Header& offending);
  /// An RST from host port `local_port` to guest port `peer_port`.
  Header rst_header(uint32_t local_port, uint32_t peer_port, uint16_t socket_type) const;
  void flush_to_host(Entry& e, Clock::time_point now);
  bool insert(Connection conn, Fd sock);
  std::optional<uint32_t> allocate_local_port(uint32_t peer_port);
  std::optional<RxPacket> next_data(size_t max_payload, Clock::time_point now);
  uint32_t desired_interest(const Entry& e) const noexcept;
  void close_pending(uint64_t token) noexcept;

  uint64_t guest_cid_;
  const UnixListener& listener_;
  EpollSet& epoll_;
  bool listener_paused_ = false;
  std::optional<Clock::time_point> accept_retry_at_;

  std::map<Key, std::unique_ptr<Entry>> conns_;
  std::unordered_map<uint64_t, Key> by_token_;
  std::unordered_map<uint64_t, PendingConnect> pending_;
  std::deque<Header> loose_rsts_;
  uint64_t next_token_ = kFirstSocketToken;
  uint32_t next_local_port_ = kFirstLocalPort;
  std::optional<Key> last_data_key_;  // round-robin cursor
  ScratchBuffer scratch_;  // host socket reads for the guest, up to kMaxPayload at a time
};

}  // namespace forkvm::vsock
