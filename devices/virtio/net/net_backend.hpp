// FrameEndpoint: the host side of a virtio-net device, one descriptor that carries exactly one
// Ethernet frame per read and per write. Two kinds, the same to the device:
// - a TAP interface (Linux /dev/net/tun with IFF_TAP | IFF_NO_PI), opened by name, optionally
//   inside another network namespace (tap.hpp);
// - a descriptor the caller passes: a TAP descriptor it opened itself, or a SOCK_DGRAM or
//   SOCK_SEQPACKET socket (e.g. one end of an AF_UNIX socketpair, whose other end a user-space
//   switch or a test reads), which keeps frame boundaries exactly as a TAP does.
// The descriptor is non-blocking and close-on-exec, and owned here (a passed one is duplicated).
// A TAP opened by name, or a passed TAP with IFF_VNET_HDR, puts a 12-byte virtio-net header in
// front of every frame both ways (vnet_header()): then the device can offer offloads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "base/fd.hpp"

namespace forkvm {

/// One frame endpoint (file comment). Move-only; the device's worker is its only user once the
/// device runs, so reads and writes need no locking.
class FrameEndpoint {
 public:
  /// Opens the TAP interface `name` (created if missing, as TUNSETIFF does for a process with
  /// CAP_NET_ADMIN) inside the network namespace `netns` (a path such as
  /// /var/run/netns/NAME; empty: this process's namespace). Throws ConfigError for an empty or
  /// too long name, Error naming the TAP, the namespace and the errno text when the open fails.
  static FrameEndpoint open_tap(const std::string& name, const std::string& netns = "");
  /// Takes a duplicate of `fd` (the caller keeps and closes its own): a TAP descriptor, or a
  /// SOCK_DGRAM / SOCK_SEQPACKET socket. Sets it non-blocking. Throws ConfigError for a
  /// negative or closed descriptor, a stream socket, a character device that is not a TAP with
  /// IFF_NO_PI (tap_fd_problem() in tap.hpp), or anything else.
  static FrameEndpoint adopt(int fd);

  /// What one receive() found.
  struct Received {
    enum class Kind {
      kFrame,   ///< a frame of `length` bytes (more than the buffer when it was truncated)
      kNone,    ///< nothing to read now (EAGAIN)
      kClosed,  ///< end of stream (a SOCK_SEQPACKET peer closed, a socket shut down): final
      kError,   ///< the read failed with `err`
    };
    Kind kind = Kind::kNone;
    /// The frame's full length. For a socket it is exact even when the frame was longer than
    /// the buffer (MSG_TRUNC); for a TAP a read fills the buffer at most, so a caller that
    /// needs to tell a truncated frame passes one byte more than it accepts.
    size_t length = 0;
    int err = 0;  ///< errno for kError
  };
  /// Reads one frame into `buf` (non-blocking). Never throws.
  Received receive(std::span<uint8_t> buf) noexcept;
  /// Writes one frame (non-blocking, never SIGPIPE). Returns 0 when it was sent whole, EAGAIN
  /// when the endpoint cannot take it now (wait for POLLOUT and retry), or another errno.
  int send(std::span<const uint8_t> frame) noexcept;

  /// The descriptor, for poll(); still owned here.
  int fd() const noexcept { return fd_.get(); }
  /// Whether every frame read or written carries a 12-byte virtio-net header in front (a TAP
  /// with IFF_VNET_HDR); the lengths receive() and send() see include it.
  bool vnet_header() const noexcept { return vnet_header_; }
  /// Tells a TAP with a virtio-net header which TUN_F_* offloads its reader takes. Returns 0,
  /// or errno (EINVAL without a virtio-net header).
  int set_offloads(unsigned tun_flags) noexcept;

  /// Whether it is a socket (else a TAP or another character device).
  bool is_socket() const noexcept { return is_socket_; }
  /// For messages: "tap 'tap0'", "tap 'tap0' in /var/run/netns/x", "socket fd", "tap fd".
  const std::string& description() const noexcept { return description_; }

 private:
  FrameEndpoint(Fd fd, bool is_socket, bool is_seqpacket, bool vnet_header,
                std::string description) noexcept
      : fd_(std::move(fd)), is_socket_(is_socket), is_seqpacket_(is_seqpacket),
        vnet_header_(vnet_header), description_(std::move(description)) {}

  /// Whether a socket reports POLLHUP (shut down both ways, or its peer closed).
  bool hung_up() const noexcept;

  Fd fd_;
  bool is_socket_ = false;
  bool is_seqpacket_ = false;
  bool vnet_header_ = false;
  std::string description_;
};

}  // namespace forkvm
