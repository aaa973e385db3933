// RelayPair: two connected stream sockets whose bytes are copied both ways, unchanged, through
// one bounded ByteQueue per direction. It knows only file descriptors (TCP, vsock and Unix
// sockets alike) and is driven by its owner's poll() loop: events_*() say what to poll for,
// handle() does the I/O poll() reported.
//
// Back-pressure: a side is not read while the queue towards the other side is full, so a peer
// that does not read stalls its sender instead of growing memory. Half-close: EOF from one side
// becomes shutdown(SHUT_WR) on the other once everything read before it has been written; the
// pair is done when both directions are. An error or a reset on either side ends the pair, and
// both sockets are then closed with SO_LINGER 0, so a TCP peer sees a reset too.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "guest-init/agent/unique_fd.hpp"
#include "guest-init/byte_queue.hpp"

namespace forkvm::relay {

/// A relayed pair of non-blocking stream sockets, `a` and `b`.
class RelayPair {
 public:
  /// What handle() left the pair in.
  enum class Status {
    kOpen,    ///< still relaying
    kDone,    ///< both directions ended with EOF and were shut down: close normally
    kFailed,  ///< an error or reset on either side (error() says which): both were reset
  };

  /// Takes both sockets; each direction holds at most `buffer_bytes`. `a_to_b` and `b_to_a`
  /// are bytes already due to be written (a request's pipelined bytes, an "OK\n"); each is cut
  /// to `buffer_bytes`.
  RelayPair(agent::UniqueFd a, agent::UniqueFd b, std::size_t buffer_bytes,
            std::string_view a_to_b = {}, std::string_view b_to_a = {});
  ~RelayPair();
  RelayPair(const RelayPair&) = delete;
  RelayPair& operator=(const RelayPair&) = delete;

  /// The first socket (the accepted one, in the relay).
  [[nodiscard]] int fd_a() const noexcept { return a_.get(); }
  /// The second socket (the dialed one, in the relay).
  [[nodiscard]] int fd_b() const noexcept { return b_.get(); }
  /// poll() events wanted on `a` / `b` (0: leave the descriptor out of the poll set, as a
  /// POLLHUP on a socket there is nothing to do with would otherwise wake the loop forever).
  [[nodiscard]] short events_a() const noexcept;
  [[nodiscard]] short events_b() const noexcept;

  /// Does the reads and writes that `revents_a` / `revents_b` allow (either may be 0), then
  /// flushes what it can. Never throws except std::bad_alloc.
  Status handle(short revents_a, short revents_b);

  /// Bytes waiting in both directions.
  [[nodiscard]] std::size_t buffered() const noexcept { return a_to_b_.queue.size() + b_to_a_.queue.size(); }
  /// Why the pair failed ("recv a: Connection reset by peer"), after Status::kFailed.
  [[nodiscard]] const std::string& error() const noexcept { return error_; }

 private:
  struct Direction {
    explicit Direction(std::size_t capacity) : queue(capacity) {}
    ByteQueue queue;
    bool source_eof = false;    // recv() returned 0 on the source
    bool sink_shut = false;     // shutdown(SHUT_WR) done on the sink
    [[nodiscard]] bool wants_read() const noexcept { return !source_eof && !queue.full(); }
    [[nodiscard]] bool wants_write() const noexcept { return !queue.empty(); }
  };

  bool pump_in(Direction& dir, int source, char side);
  bool pump_out(Direction& dir, int sink, char side);
  void fail(std::string why);

  agent::UniqueFd a_, b_;
  Direction a_to_b_, b_to_a_;
  bool failed_ = false;
  std::string error_;
};

}  // namespace forkvm::relay
