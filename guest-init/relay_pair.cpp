#include "guest-init/relay_pair.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace forkvm::relay {
namespace {

// Makes close() send a reset (TCP) instead of a FIN: the peer must not take an aborted
// relay for a complete stream. Other families ignore it or keep their own close semantics.
void set_reset_on_close(int fd) noexcept {
  if (fd < 0) return;
  const linger abort_close{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
}

std::string socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  return err == 0 ? std::string("hang-up") : std::string(std::strerror(err));
}

}  // namespace

RelayPair::RelayPair(agent::UniqueFd a, agent::UniqueFd b, std::size_t buffer_bytes,
                     std::string_view a_to_b, std::string_view b_to_a)
    : a_(std::move(a)), b_(std::move(b)), a_to_b_(buffer_bytes), b_to_a_(buffer_bytes) {
  a_to_b_.queue.append(a_to_b);
  b_to_a_.queue.append(b_to_a);
}

RelayPair::~RelayPair() {
  if (failed_) {
    set_reset_on_close(a_.get());
    set_reset_on_close(b_.get());
  }
}

short RelayPair::events_a() const noexcept {
  if (failed_) return 0;
  short events = 0;
  if (a_to_b_.wants_read()) events |= POLLIN;
  if (b_to_a_.wants_write()) events |= POLLOUT;
  return events;
}

short RelayPair::events_b() const noexcept {
  if (failed_) return 0;
  short events = 0;
  if (b_to_a_.wants_read()) events |= POLLIN;
  if (a_to_b_.wants_write()) events |= POLLOUT;
  return events;
}

void RelayPair::fail(std::string why) {
  if (failed_) return;
  failed_ = true;
  error_ = std::move(why);
}

// Reads from `source` until it would block, the queue is full or EOF. False on an error.
bool RelayPair::pump_in(Direction& dir, int source, char side) {
  while (dir.wants_read()) {
    const std::span<char> area = dir.queue.write_area();
    const ssize_t n = ::recv(source, area.data(), area.size(), MSG_DONTWAIT);
    if (n > 0) {
      dir.queue.commit(static_cast<std::size_t>(n));
      continue;
    }
    dir.queue.trim();
    if (n == 0) {
      dir.source_eof = true;
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    fail(std::string("recv ") + side + ": " + std::strerror(errno));
    return false;
  }
  return true;
}

// Writes to `sink` until the queue is empty or the sink would block; then, once the source
// has ended and everything is written, shuts the sink's write side. False on an error.
bool RelayPair::pump_out(Direction& dir, int sink, char side) {
  while (dir.wants_write()) {
    const std::span<const char> area = dir.queue.read_area();
    const ssize_t n = ::send(sink, area.data(), area.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      dir.queue.consume(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    fail(std::string("send ") + side + ": " + (n < 0 ? std::strerror(errno) : "no progress"));
    return false;
  }
  if (dir.source_eof && !dir.sink_shut) {
    // ENOTCONN: the peer is already gone; the direction is over either way.
    if (::shutdown(sink, SHUT_WR) != 0 && errno != ENOTCONN) {
      fail(std::string("shutdown ") + side + ": " + std::strerror(errno));
      return false;
    }
    dir.sink_shut = true;
  }
  return true;
}

RelayPair::Status RelayPair::handle(short revents_a, short revents_b) {
  if (failed_) return Status::kFailed;
  // POLLERR: a reset or another socket error; the pending error says which.
  if ((revents_a & POLLERR) != 0) fail("a: " + socket_error(a_.get()));
  if ((revents_b & POLLERR) != 0) fail("b: " + socket_error(b_.get()));
  if (failed_) return Status::kFailed;
  // Reads first (POLLHUP included: recv then reports EOF or the error), then every write
  // that can go, so bytes just read leave in the same wake when the sink has room. A side
  // that stopped on a full queue is read once more after the writes made room.
  constexpr short kReadable = POLLIN | POLLHUP;
  const bool read_a = (revents_a & kReadable) != 0;
  const bool read_b = (revents_b & kReadable) != 0;
  if (read_a && !pump_in(a_to_b_, a_.get(), 'a')) return Status::kFailed;
  if (read_b && !pump_in(b_to_a_, b_.get(), 'b')) return Status::kFailed;
  const bool a_stopped_full = read_a && a_to_b_.queue.full();
  const bool b_stopped_full = read_b && b_to_a_.queue.full();
  if (!pump_out(a_to_b_, b_.get(), 'b')) return Status::kFailed;
  if (!pump_out(b_to_a_, a_.get(), 'a')) return Status::kFailed;
  if (a_stopped_full || b_stopped_full) {
    if (a_stopped_full && !pump_in(a_to_b_, a_.get(), 'a')) return Status::kFailed;
    if (b_stopped_full && !pump_in(b_to_a_, b_.get(), 'b')) return Status::kFailed;
    if (!pump_out(a_to_b_, b_.get(), 'b')) return Status::kFailed;
    if (!pump_out(b_to_a_, a_.get(), 'a')) return Status::kFailed;
  }
  return a_to_b_.sink_shut && b_to_a_.sink_shut ? Status::kDone : Status::kOpen;
}

}  // namespace forkvm::relay
