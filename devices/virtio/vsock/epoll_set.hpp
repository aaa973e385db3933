// A small RAII epoll set keyed by 64-bit tokens (epoll_event.data.u64), shared by the vsock
// worker (queue and wake eventfds) and the muxer (listener and connection sockets).
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <span>

#include "base/fd.hpp"

namespace forkvm::vsock {

/// One epoll instance. Level-triggered throughout: every fd's interest set is kept equal to
/// what the worker can act on right now, which is what prevents busy loops (see muxer.hpp).
class EpollSet {
 public:
  /// Creates the epoll fd (close-on-exec); throws VsockError on failure.
  EpollSet();
  /// Registers `fd` for `events` under `token`. False (errno set) on failure.
  bool add(int fd, uint32_t events, uint64_t token) noexcept;
  /// Changes the events and token of a registered fd.
  bool modify(int fd, uint32_t events, uint64_t token) noexcept;
  /// Unregisters `fd` (ignoring "not registered").
  void remove(int fd) noexcept;
  /// epoll_wait; returns the number of events (0 on timeout or EINTR).
  int wait(std::span<epoll_event> out, int timeout_ms) noexcept;

 private:
  Fd fd_;
};

}  // namespace forkvm::vsock
