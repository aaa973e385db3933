// One vsock stream connection as the host sees it: the state machine (after Firecracker's
// csm/connection.rs, virtio 1.2 §5.10.6.3-§5.10.6.6) and the credit accounting in both
// directions. Pure: no sockets and no guest memory, so every rule here is unit-testable. The
// owner (VsockMuxer) feeds it guest packets and host-socket outcomes and asks it which packet to
// put on the guest's RX queue next.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "devices/virtio/vsock/packet.hpp"

namespace forkvm::vsock {

/// The clock every vsock deadline is measured on.
using Clock = std::chrono::steady_clock;

/// Where a connection is in its life.
enum class ConnState : uint8_t {
  kConnecting,   ///< host-initiated: REQUEST sent (or queued), waiting for the guest's RESPONSE
  kEstablished,  ///< data may flow (each direction may still be half-closed, see the flags)
  kClosing,      ///< we sent SHUTDOWN(RCV|SEND); waiting for the guest's RST until a deadline
  kDead,         ///< finished: an RST is queued for the guest, or nothing more is owed
};

/// What the owner must do on the host socket after a guest packet.
enum class GuestAction : uint8_t {
  kNone,       ///< nothing beyond flushing to_host() and checking the flags
  kConnected,  ///< the guest accepted a host-initiated connection: write "OK <port>\n"
};

/// A stream connection between host port local_port() and guest port peer_port().
class Connection {
 public:
  /// Receive buffer we advertise to the guest (buf_alloc), which bounds to_host(): the guest may
  /// never have more than this many bytes in flight towards the host socket.
  static constexpr uint32_t kBufAlloc = 64 * 1024;
  /// When the guest's last view of our free space falls below this and we have freed space
  /// since, a CREDIT_UPDATE is queued (Firecracker: CONN_CREDIT_UPDATE_THRESHOLD).
  static constexpr uint32_t kCreditUpdateThreshold = 4 * 1024;
  /// How long a host-initiated REQUEST waits for RESPONSE, and a close waits for the other
  /// side's RST (Firecracker: CONN_REQUEST_TIMEOUT_MS, CONN_SHUTDOWN_TIMEOUT_MS).
  static constexpr std::chrono::milliseconds kRequestTimeout{2000};
  static constexpr std::chrono::milliseconds kShutdownTimeout{2000};

  /// A host program asked for guest port `peer_port` (CONNECT line); a REQUEST is queued.
  static Connection host_initiated(uint64_t guest_cid, uint32_t local_port, uint32_t peer_port,
                                   Clock::time_point now);
  /// The guest's REQUEST `req` was accepted (the host socket connected); a RESPONSE is queued.
  /// The guest's buf_alloc/fwd_cnt in `req` seed our view of its credit.
  static Connection guest_initiated(const Header& req);

  /// An established connection as a VM made from a capture takes it over (VsockDevice::State,
  /// Vm::take_vsock_connection): nothing buffered either way, no handshake, shutdown or RST
  /// pending, so the restored guest (whose memory holds its side as it was) and a fresh host
  /// socket go on from the same counters.
  struct Carried {
    uint32_t local_port = 0;
    uint32_t peer_port = 0;
    uint32_t fwd_cnt = 0;         ///< guest bytes received and written to the host (all of them)
    uint32_t advertised_fwd = 0;  ///< fwd_cnt in the last header the guest got
    uint32_t tx_cnt = 0;          ///< bytes sent to the guest
    uint32_t peer_buf_alloc = 0;  ///< the guest's last report (guest-controlled)
    uint32_t peer_fwd_cnt = 0;    ///< the guest's last report (guest-controlled)
    bool credit_update_owed = false;  ///< a CREDIT_UPDATE was queued and not yet sent
    /// Opaque to the device: what the capturer said of the connection (CaptureOptions), handed
    /// back with it (VsockDevice::take_connection).
    uint32_t tag = 0;
    /// Field equality.
    bool operator==(const Carried&) const = default;
  };
  /// The carried form of this connection, or nullopt when it cannot be carried: not
  /// established, guest bytes not yet written to the host, a handshake, shutdown or RST
  /// pending, or either side shut a direction.
  std::optional<Carried> carried() const noexcept;
  /// Takes over a carried connection (checked by the caller: see VsockDevice::restore_state).
  static Connection resume(uint64_t guest_cid, const Carried& c) noexcept;

  uint32_t local_port() const noexcept { return local_port_; }
  uint32_t peer_port() const noexcept { return peer_port_; }
  ConnState state() const noexcept { return state_; }

  // ---- guest -> host ----

  /// Applies a validated guest packet addressed to this connection (payload: its RW bytes).
  /// Every packet refreshes the guest's credit (buf_alloc/fwd_cnt, guest-controlled; they only
  /// ever limit what we send). Protocol errors (data beyond the credit we advertised, data or
  /// RESPONSE in the wrong state, a second REQUEST) kill the connection with an RST.
  GuestAction on_guest_packet(const Header& h, std::span<const uint8_t> payload,
                              Clock::time_point now);
  /// Guest bytes accepted but not yet written to the host socket (at most kBufAlloc).
  std::span<const uint8_t> to_host() const noexcept;
  /// The owner wrote the first `n` bytes of to_host() to the host socket: frees them and
  /// advances fwd_cnt; may queue a CREDIT_UPDATE. `n` is clamped to to_host().size().
  void on_host_consumed(size_t n, Clock::time_point now);
  /// True once the guest shut its sending side and to_host() is empty: the owner should
  /// shutdown(SHUT_WR) the host socket (once; see mark_host_write_shut()).
  bool wants_host_write_shut() const noexcept;
  /// Records that the owner did shutdown(SHUT_WR).
  void mark_host_write_shut() noexcept { host_write_shut_ = true; }

  // ---- host -> guest ----

  /// The host socket reached end of stream. `full`: it is closed both ways (HUP), so we will
  /// neither send nor receive: SHUTDOWN(RCV|SEND) and a deadline for the guest's RST. Otherwise
  /// only our sending side ends: SHUTDOWN(SEND), and guest data keeps flowing to the host.
  void on_host_eof(bool full, Clock::time_point now);
  /// The host socket failed (write error, reset, peer vanished before RESPONSE): RST the guest.
  void kill() noexcept;
  /// Whether host bytes may be read for the guest now: established, the RESPONSE already sent,
  /// neither side shut this direction.
  bool can_send_data() const noexcept;
  /// Bytes the guest can take now: its buf_alloc minus what is in flight (tx_cnt - its fwd_cnt),
  /// in wrapping u32 arithmetic, 0 when it reports more in flight than its buffer (a lying or
  /// confused guest), capped at kMaxPayload. 0 unless can_send_data().
  uint32_t peer_credit() const noexcept;
  /// Builds an RW header for `len` (<= peer_credit()) bytes and counts them as sent.
  Header data_packet(uint32_t len) noexcept;

  /// Whether a control packet (REQUEST, RESPONSE, RST, SHUTDOWN, CREDIT_UPDATE) is queued.
  bool has_control() const noexcept { return pending_ != 0; }
  /// Takes the next queued control packet. RST wins over everything (and is the last packet of
  /// a connection); RESPONSE precedes any data; SHUTDOWN goes out after the data before it,
  /// which holds because host data is read only into guest buffers, never buffered here.
  std::optional<Header> next_control() noexcept;

  /// Applies deadlines: an unanswered REQUEST or an unacknowledged close becomes an RST.
  void on_timer(Clock::time_point now) noexcept;
  /// The next deadline, if any.
  std::optional<Clock::time_point> deadline() const noexcept { return deadline_; }
  /// Dead and nothing left to send: the owner closes the socket and forgets the connection.
  bool finished() const noexcept { return state_ == ConnState::kDead && pending_ == 0; }

  /// Credit counters, for tests and metrics.
  uint32_t fwd_cnt() const noexcept { return fwd_cnt_; }
  uint32_t rx_cnt() const noexcept { return rx_cnt_; }
  uint32_t tx_cnt() const noexcept { return tx_cnt_; }

 private:
  // Pending control packets, a set (after Firecracker's PendingRxSet).
  static constexpr uint8_t kPendRequest = 1;
  static constexpr uint8_t kPendResponse = 2;
  static constexpr uint8_t kPendRst = 4;
  static constexpr uint8_t kPendShutdown = 8;
  static constexpr uint8_t kPendCreditUpdate = 16;

  Connection(uint64_t guest_cid, uint32_t local_port, uint32_t peer_port, ConnState state,
             uint8_t pending) noexcept;
  Header make_header(uint16_t op) noexcept;
  void accept_data(std::span<const uint8_t> payload, Clock::time_point now);
  void refresh_credit_update() noexcept;
  void maybe_finish(Clock::time_point now) noexcept;

  uint64_t guest_cid_;
  uint32_t local_port_;
  uint32_t peer_port_;
  ConnState state_;
  uint8_t pending_;
  std::optional<Clock::time_point> deadline_;

  // Shutdown bits: what the guest announced (shutdown::kRcv/kSend, ORed across packets), and
  // what we announced (kSend after host EOF, kRcv too when the host socket is gone).
  uint32_t peer_shut_ = 0;
  uint32_t local_shut_ = 0;
  bool host_write_shut_ = false;

  // Guest -> host: rx_cnt_ counts bytes received from the guest, fwd_cnt_ bytes written to the
  // host socket, advertised_fwd_ the fwd_cnt in the last header we sent. The guest may have at
  // most kBufAlloc - (rx_cnt_ - advertised_fwd_) more bytes in flight.
  uint32_t rx_cnt_ = 0;
  uint32_t fwd_cnt_ = 0;
  uint32_t advertised_fwd_ = 0;
  std::vector<uint8_t> to_host_;
  size_t to_host_head_ = 0;

  // Host -> guest: tx_cnt_ counts bytes sent to the guest; peer_* are the guest's last report.
  uint32_t tx_cnt_ = 0;
  uint32_t peer_buf_alloc_ = 0;
  uint32_t peer_fwd_cnt_ = 0;
};

}  // namespace forkvm::vsock
