#include "sandbox/client_impl.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "base/fd_flags.hpp"
#include "base/thread_launcher.hpp"
#include "base/text.hpp"
#include "contract/protocol/hello.hpp"
#include "contract/protocol/messages.hpp"
#include "contract/protocol/protocol_error.hpp"
#include "sandbox/requests.hpp"

namespace forkvm {
namespace proto = forkvm::protocol;
using nlohmann::json;
using sandbox::Clock;
using sandbox::Pending;

namespace {

// Receives until one whole frame is decoded or the deadline passes (hello exchange only).
proto::Frame read_frame(int fd, proto::FrameDecoder& decoder, Clock::time_point deadline) {
  char buf[4096];
  for (;;) {
    if (auto f = decoder.next()) return std::move(*f);
    const size_t n = sandbox::read_some(fd, buf, sizeof buf, deadline);
    if (n == 0) throw AgentUnreachableError("the agent closed the connection during the hello");
    decoder.feed(std::string_view(buf, n));
  }
}

bool is_terminal(std::string_view type) {
  return type == proto::msg::kOk || type == proto::msg::kError || type == proto::msg::kExit;
}

}  // namespace

AgentClient::Impl::Impl(const AgentClientOptions& opts) : options(opts) {
  const auto deadline = Clock::now() + options.connect_timeout;
  fd_ = sandbox::connect_unix(options.socket_path, deadline);
  raw_fd_ = fd_.get();
  std::string leftover;
  if (options.vsock_port) leftover = sandbox::vsock_handshake(raw_fd_, *options.vsock_port, deadline);
  try {
    decoder_.feed(leftover);
    sandbox::write_all(raw_fd_, proto::encode(proto::make_hello()), deadline);
    const proto::Frame hello = read_frame(raw_fd_, decoder_, deadline);
    version = proto::negotiate(proto::VersionRange{}, hello.header);
  } catch (const proto::ProtocolError& e) {
    throw AgentProtocolError(std::string("hello with the agent failed: ") + e.what());
  }
  start_reader();
}

AgentClient::Impl::Impl(const AgentClientOptions& opts, sandbox::UniqueFd fd, uint32_t v)
    : options(opts), version(v) {
  if (!proto::VersionRange{}.contains(v)) {
    throw AgentProtocolError("cannot attach to an agent connection speaking protocol version " +
                             std::to_string(v) + ": this client speaks " +
                             std::to_string(proto::VersionRange{}.min) + " to " +
                             std::to_string(proto::VersionRange{}.max));
  }
  // Non-blocking, as connect_unix() makes its sockets: the reader polls, writers have deadlines.
  int err = set_nonblocking(fd.get());
  if (err == 0 && ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC) != 0) err = errno;
  if (err != 0) {
    throw AgentUnreachableError("cannot use the carried agent connection: " + errno_text(err));
  }
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
    throw AgentUnreachableError("the carried agent connection is not a stream socket");
  }
  fd_ = std::move(fd);
  raw_fd_ = fd_.get();
}

void AgentClient::Impl::start_reader() {
  reader_ = start_thread([this] {
    reader_id_.store(std::this_thread::get_id());
    reader_loop();
  });
}

AgentClient::Quiet AgentClient::Impl::hold_quiet() {
  AgentClient::Quiet q;
  // Under write_mutex_ no frame is half-written (write_wire holds it for a whole frame) and no
  // new one starts until the hold is released.
  q.hold = std::unique_lock(write_mutex_);
  std::lock_guard lock(map_mutex_);
  q.quiet = !closed_ && pending_.empty() && forgotten_.empty() && !forgotten_overflow_ &&
            partial_bytes_.load() == 0;
  return q;
}

AgentClient::Impl::~Impl() {
  close(nullptr);
  // Only reachable from the reader thread if a callback destroyed the client (documented as
  // forbidden); detach rather than terminate.
  if (reader_.joinable()) reader_.detach();
}

std::exception_ptr AgentClient::Impl::closed_error() const {
  std::lock_guard lock(map_mutex_);
  return closed_error_;
}

std::shared_ptr<Pending> AgentClient::Impl::new_request(
    json header, std::string payload, const std::string& path,
    std::function<void(Pending&, proto::Frame&)> on_frame) {
  auto p = std::make_shared<Pending>();
  p->id = next_id_.fetch_add(1);
  p->op = header.value("type", std::string());
  p->path = path;
  p->on_frame = std::move(on_frame);
  header["id"] = p->id;
  std::string wire;
  try {
    wire = proto::encode(proto::Frame{std::move(header), std::move(payload)});
  } catch (const proto::ProtocolError& e) {
    const bool too_big = e.kind() == proto::ProtocolErrorKind::HeaderTooLarge ||
                         e.kind() == proto::ProtocolErrorKind::PayloadTooLarge;
    throw OperationError(too_big ? ErrorKind::kTooLarge : ErrorKind::kInvalidArgument, p->op,
                         path, e.what(), std::nullopt, false);
  }
  {
    std::lock_guard lock(map_mutex_);
    if (closed_) std::rethrow_exception(closed_error_);
    p->last_activity = Clock::now();
    pending_.emplace(p->id, p);
  }
  write_wire(wire);
  return p;
}

void AgentClient::Impl::write_wire(const std::string& wire) {
  std::unique_lock wl(write_mutex_);
  try {
    sandbox::write_all(raw_fd_, wire, Clock::now() + options.request_timeout);
  } catch (const Error&) {
    wl.unlock();
    close(std::current_exception());
    throw;
  }
}

void AgentClient::Impl::send_frame(json header, std::string payload) {
  std::string wire = proto::encode(proto::Frame{std::move(header), std::move(payload)});
  {
    std::lock_guard lock(map_mutex_);
    if (closed_) std::rethrow_exception(closed_error_);
  }
  write_wire(wire);
}

json AgentClient::Impl::control(std::string_view type, uint64_t target, json extra) {
  json h = extra.is_object() ? std::move(extra) : json::object();
  h["type"] = type;
  h["target"] = target;
  auto p = new_request(std::move(h), {}, "");
  return wait_done(*p).header;
}

void AgentClient::Impl::touch(Pending& p) {
  std::lock_guard lock(p.m);
  p.last_activity = Clock::now();
}

std::optional<proto::Frame> AgentClient::Impl::wait_terminal(
    Pending& p, std::optional<Clock::time_point> hard_deadline, bool idle_timeout,
    bool break_on_callback_error) {
  std::unique_lock lock(p.m);
  for (;;) {
    if (p.done) {
      if (p.error) std::rethrow_exception(p.error);
      return *p.terminal;
    }
    if (break_on_callback_error && p.callback_error) return std::nullopt;
    auto deadline = Clock::time_point::max();
    if (idle_timeout) deadline = p.last_activity + options.request_timeout;
    if (hard_deadline) deadline = std::min(deadline, *hard_deadline);
    if (deadline == Clock::time_point::max()) {
      p.cv.wait(lock);
      continue;
    }
    if (p.cv.wait_until(lock, deadline) == std::cv_status::timeout && !p.done) {
      const bool idle = idle_timeout && Clock::now() >= p.last_activity + options.request_timeout;
      if (!idle && (!hard_deadline || Clock::now() < *hard_deadline)) continue;
      lock.unlock();
      forget(p.id);
      throw TimeoutError("the agent did not answer " + p.op + (p.path.empty() ? "" : " " + p.path) +
                         (idle ? " within " + millis_text(options.request_timeout)
                               : " before the deadline"));
    }
  }
}

proto::Frame AgentClient::Impl::wait_done(Pending& p, std::optional<Clock::time_point> hard_deadline,
                                          bool idle_timeout) {
  proto::Frame f = *wait_terminal(p, hard_deadline, idle_timeout);
  if (f.header.value("type", std::string()) == proto::msg::kError) {
    throw sandbox::error_from_frame(f.header, p.op, p.path);
  }
  return f;
}

void AgentClient::Impl::forget(uint64_t id) {
  std::lock_guard lock(map_mutex_);
  // Still pending here means no terminal frame came: the agent may yet answer it.
  if (pending_.erase(id) == 0) return;
  if (forgotten_.size() < kMaxForgotten) {
    forgotten_.insert(id);
  } else {
    forgotten_overflow_ = true;
  }
}

void AgentClient::Impl::stop_delivery(Pending& p) {
  {
    std::lock_guard lock(p.m);
    p.delivery_stopped = true;
  }
  // dispatch() checks the flag under deliver_mutex_, which it holds across the callback: once
  // this lock is taken, a callback in progress has returned and none starts again.
  if (on_reader()) return;
  std::lock_guard wait_for_callback(deliver_mutex_);
}

void AgentClient::Impl::fail_all(std::exception_ptr error) {
  std::map<uint64_t, std::shared_ptr<Pending>> failed;
  {
    std::lock_guard lock(map_mutex_);
    if (closed_) return;
    closed_ = true;
    closed_error_ = error;
    failed.swap(pending_);
  }
  for (auto& [id, p] : failed) {
    {
      std::lock_guard lock(p->m);
      p->error = error;
      p->done = true;
    }
    p->cv.notify_all();
  }
}

void AgentClient::Impl::close_nowait(std::exception_ptr error) {
  if (!error) error = std::make_exception_ptr(InvalidStateError("the agent client was closed"));
  fail_all(error);
  closing_ = true;
  // Wakes the reader (recv returns 0) and any writer stuck in poll (EPIPE). The descriptor is
  // still open here: it is only closed once the reader is gone, by the first close().
  // Under fd_mutex_: a close() on another thread may be closing the descriptor (once the
  // reader is gone, which it may be by itself), and a shutdown of the stale number could hit
  // a file opened since.
  if (!shut_down_.exchange(true)) {
    std::lock_guard fl(fd_mutex_);
    if (const int fd = raw_fd_.load(); fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }
  // A callback running on the reader thread holds deliver_mutex_: waiting for it is what makes
  // "no callback runs once this returns" true. From inside that callback, nothing to wait for.
  if (on_reader()) return;
  std::lock_guard wait_for_callback(deliver_mutex_);
}

void AgentClient::Impl::close(std::exception_ptr error) {
  close_nowait(std::move(error));
  // On the reader thread (a callback closing): the reader returns by itself; a later close()
  // from another thread joins it.
  if (on_reader()) return;
  // One joiner at a time: the Sandbox's watcher (VM died) and shutdown() may close at once,
  // and two concurrent std::thread::join() calls on one thread are undefined (seen: a hang).
  std::lock_guard cl(close_mutex_);
  if (reader_.joinable()) reader_.join();
  std::lock_guard wl(write_mutex_);
  std::lock_guard fl(fd_mutex_);
  if (!reader_.joinable() && fd_.get() >= 0) {
    fd_ = sandbox::UniqueFd();
    raw_fd_ = -1;  // a writer that raced past the closed check gets EBADF, not another file
  }
}

std::exception_ptr AgentClient::Impl::lost_error(const std::string& reason) {
  if (options.connection_lost_error) {
    try {
      if (auto e = options.connection_lost_error(reason)) return e;
    } catch (...) {
      return std::current_exception();
    }
  }
  return std::make_exception_ptr(AgentUnreachableError("connection to the agent lost: " + reason));
}

void AgentClient::Impl::reader_loop() {
  for (;;) {
    pollfd pfd{raw_fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, -1);
    if (r < 0 && errno == EINTR) continue;
    ssize_t n = r < 0 ? -1 : ::recv(raw_fd_, read_buf_.data(), read_buf_.size(), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (closing_) return;
    if (n <= 0) {
      const std::string why = n == 0 ? "the agent closed the connection" : errno_text(errno);
      fail_all(lost_error(why));
      ::shutdown(raw_fd_, SHUT_RDWR);
      return;
    }
    try {
      decoder_.feed(std::string_view(reinterpret_cast<const char*>(read_buf_.data()), static_cast<size_t>(n)));
      while (auto f = decoder_.next()) dispatch(*f);
      partial_bytes_.store(decoder_.buffered());
    } catch (const proto::ProtocolError& e) {
      fail_all(std::make_exception_ptr(
          AgentProtocolError(std::string("malformed frame from the agent: ") + e.what())));
      ::shutdown(raw_fd_, SHUT_RDWR);
      return;
    }
  }
}

void AgentClient::Impl::dispatch(proto::Frame& frame) {
  // validate_header() passed in the decoder: "type" is a non-empty string, "id" a u64.
  const uint64_t id = frame.header["id"].get<uint64_t>();
  const std::string type = frame.header["type"].get<std::string>();
  std::shared_ptr<Pending> p;
  const bool terminal = is_terminal(type);
  {
    std::lock_guard lock(map_mutex_);
    auto it = pending_.find(id);
    if (it == pending_.end()) {
      ++stray_frames;
      if (terminal) forgotten_.erase(id);  // its answer is complete now
      return;
    }
    p = it->second;
    if (terminal) pending_.erase(it);
  }
  if (terminal) {
    {
      std::lock_guard lock(p->m);
      p->terminal = std::move(frame);
      p->done = true;
      p->last_activity = Clock::now();
    }
    p->cv.notify_all();
    return;
  }
  // Agent-controlled: a request that streams nothing back (no on_frame) has no use for a
  // non-terminal frame, and such frames must not keep its inactivity clock from running out.
  // Once a callback threw, the request is being cancelled: later frames are dropped unread.
  bool deliver = false;
  {
    std::lock_guard lock(p->m);
    if (!p->on_frame) {
      ++stray_frames;
      return;
    }
    p->last_activity = Clock::now();
    deliver = !p->callback_error;
  }
  if (deliver) {
    // Held across the callback (close_nowait() waits on it); closing_ is checked under it, so
    // no callback starts once close_nowait() has returned.
    std::lock_guard gate(deliver_mutex_);
    {
      // Checked again under the gate: the waiter may have stopped delivery since (it then
      // waits for this gate, so the check and the call are one step for it).
      std::lock_guard lock(p->m);
      deliver = !p->delivery_stopped && !p->callback_error;
    }
    try {
      if (deliver && !closing_) p->on_frame(*p, frame);
    } catch (...) {
      std::lock_guard lock(p->m);
      if (!p->callback_error) p->callback_error = std::current_exception();
    }
  }
  p->cv.notify_all();
}

}  // namespace forkvm
