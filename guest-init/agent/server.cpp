#include "guest-init/agent/server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstring>
#include <optional>
#include <system_error>

#include "contract/protocol/hello.hpp"
#include "contract/protocol/messages.hpp"
#include "guest-init/agent/metadata.hpp"
#include "guest-init/agent/server_impl.hpp"

namespace forkvm::agent {
namespace {

// Connections accepted per readiness event, so a flood of connects cannot starve the rest.
constexpr int kAcceptBurst = 16;

void set_flags(int fd) {
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

}  // namespace

Server::Server(int agent_fd, int metadata_fd, ServerOptions options)
    : impl_(std::make_unique<Impl>(agent_fd, metadata_fd, std::move(options))) {}
Server::~Server() = default;
void Server::run() { impl_->run(); }
void Server::stop() noexcept { impl_->stop(); }

Server::Impl::Impl(int agent_fd, int metadata_fd, ServerOptions options)
    : options_(std::move(options)),
      store_(options_.state_dir),
      agent_listen_(agent_fd),
      meta_listen_(metadata_fd) {
  for (int fd : {agent_fd, metadata_fd}) {
    if (fd >= 0) set_flags(fd);
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (int signo : options_.extra_signals) sigaddset(&set, signo);
  if (const int err = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0) {
    throw std::system_error(err, std::generic_category(), "pthread_sigmask");
  }
  signal_fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_.valid()) throw std::system_error(errno, std::generic_category(), "signalfd");
  ::signal(SIGPIPE, SIG_IGN);
  try {
    make_directories(options_.state_dir, 0755);
  } catch (const OpError& e) {
    log(std::string("cannot create the state directory: ") + e.what());
  }
}

void Server::Impl::log(const std::string& line) const {
  if (options_.log) options_.log(line);
}

bool Server::Impl::congested(const FramedConn& conn) const noexcept {
  return conn.out.backlog() >= options_.max_backlog_bytes;
}

bool Server::Impl::accepts_input(const FramedConn& conn) const {
  if (conn.closed || congested(conn)) return false;
  // A command that does not read its stdin must not make the agent buffer without bound.
  for (const auto& [id, key] : conn.execs) {
    const auto it = execs_.find(key);
    if (it != execs_.end() && it->second.stdin_buf.size() >= options_.max_backlog_bytes) {
      return false;
    }
  }
  return true;
}

void Server::Impl::run() {
  running_ = true;
  while (running_) iterate();
  for (auto& [key, conn] : framed_) close_framed(conn, "the server stops");
  collect_closed();
  meta_.clear();
}

int Server::Impl::poll_timeout() const {
  const auto now = Clock::now();
  for (const auto& [key, conn] : framed_) {
    if (!conn.reads.empty() && !congested(conn)) return 0;
  }
  std::optional<std::chrono::milliseconds> wait;  // none: until a descriptor is ready
  if (options_.max_idle_poll_ms >= 0) wait = std::chrono::milliseconds(options_.max_idle_poll_ms);
  for (const auto& [key, exec] : execs_) {
    std::optional<Clock::time_point> when;
    if (!exec.exited) {
      when = exec.deadline;
    } else {
      when = exec.exited_at + std::chrono::milliseconds(100);
    }
    if (!when) continue;
    if (*when <= now) return 0;
    // Rounded up, so the wake-up is never early.
    const auto due = std::chrono::ceil<std::chrono::milliseconds>(*when - now);
    wait = wait ? std::min(*wait, due) : due;
  }
  if (!wait) return -1;
  // poll() takes an int: a deadline further off than ~24 days wakes early and is checked again.
  return static_cast<int>(std::min<std::chrono::milliseconds::rep>(wait->count(), INT_MAX));
}

void Server::Impl::iterate() {
  pollfds_.clear();
  tags_.clear();
  auto add = [this](int fd, short events, Source source, std::uint64_t key) {
    pollfds_.push_back({fd, events, 0});
    tags_.push_back({source, key});
  };
  add(signal_fd_.get(), POLLIN, Source::kSignal, 0);
  if (agent_listen_.valid()) add(agent_listen_.get(), POLLIN, Source::kAgentListen, 0);
  if (meta_listen_.valid()) add(meta_listen_.get(), POLLIN, Source::kMetaListen, 0);
  for (const auto& [key, conn] : framed_) {
    short events = conn.out.backlog() > 0 ? POLLOUT : 0;
    if (accepts_input(conn)) events = static_cast<short>(events | POLLIN);
    add(conn.fd.get(), events, Source::kFramed, key);
  }
  for (const auto& [key, conn] : meta_) {
    short events = conn.out.backlog() > 0 ? POLLOUT : 0;
    if (!conn.eof && conn.out.backlog() < options_.max_backlog_bytes) {
      events = static_cast<short>(events | POLLIN);
    }
    add(conn.fd.get(), events, Source::kMeta, key);
  }
  for (const auto& [key, exec] : execs_) {
    const auto conn = framed_.find(exec.conn);
    const bool paused = conn == framed_.end() || congested(conn->second);
    // A paused pipe is left out entirely: its POLLHUP would otherwise wake poll() in a loop.
    if (exec.out.valid() && (!paused || exec.out_truncated)) {
      add(exec.out.get(), POLLIN, Source::kOut, key);
    }
    if (exec.err.valid() && (!paused || exec.err_truncated)) {
      add(exec.err.get(), POLLIN, Source::kErr, key);
    }
    if (exec.in.valid() && !exec.stdin_buf.empty()) add(exec.in.get(), POLLOUT, Source::kIn, key);
  }

  const int ready = ::poll(pollfds_.data(), pollfds_.size(), poll_timeout());
  if (ready < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
  if (ready > 0) {
    for (std::size_t i = 0; i < pollfds_.size(); ++i) {
      if (pollfds_[i].revents != 0) dispatch(tags_[i], pollfds_[i].revents);
    }
  }
  reap_children();
  on_timers();
  for (auto& [key, conn] : framed_) {
    if (conn.closed) continue;
    process_frames(conn);
    pump_reads(conn);
  }
  finish_execs();
  for (auto& [key, conn] : framed_) {
    if (!conn.closed && conn.out.backlog() > 0 && !flush(conn.fd.get(), conn.out)) {
      close_framed(conn, "write failed");
    }
  }
  for (auto& [key, conn] : meta_) {
    if (conn.closed) continue;
    process_lines(conn);
    if (conn.out.backlog() > 0 && !flush(conn.fd.get(), conn.out)) conn.closed = true;
    if (conn.eof && conn.out.backlog() == 0) conn.closed = true;
  }
  collect_closed();
}

void Server::Impl::dispatch(const Tag& tag, short revents) {
  switch (tag.source) {
    case Source::kSignal: read_signals(); return;
    case Source::kAgentListen: accept_framed(); return;
    case Source::kMetaListen: accept_meta(); return;
    case Source::kFramed: {
      const auto it = framed_.find(tag.key);
      if (it == framed_.end() || it->second.closed) return;
      FramedConn& conn = it->second;
      if ((revents & POLLOUT) != 0 && !flush(conn.fd.get(), conn.out)) {
        close_framed(conn, "write failed");
        return;
      }
      if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_framed(conn);
      return;
    }
    case Source::kMeta: {
      const auto it = meta_.find(tag.key);
      if (it == meta_.end() || it->second.closed) return;
      if ((revents & POLLOUT) != 0 && !flush(it->second.fd.get(), it->second.out)) {
        it->second.closed = true;
        return;
      }
      if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_meta(it->second);
      return;
    }
    case Source::kOut:
    case Source::kErr:
    case Source::kIn: {
      const auto it = execs_.find(tag.key);
      if (it == execs_.end()) return;
      if (tag.source == Source::kIn) {
        write_stdin(it->second);
      } else {
        read_output(it->second, tag.source == Source::kErr, protocol::kChunkBytes);
      }
      return;
    }
  }
}

void Server::Impl::read_signals() {
  signalfd_siginfo info{};
  while (::read(signal_fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    const int signo = static_cast<int>(info.ssi_signo);
    // SIGCHLD needs no action here: reap_children() runs after every poll().
    if (signo != SIGCHLD && options_.on_signal) options_.on_signal(signo);
  }
}

void Server::Impl::accept_framed() {
  for (int i = 0; i < kAcceptBurst; ++i) {
    const int fd = ::accept4(agent_listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        log(std::string("accept (agent port): ") + std::strerror(errno));
      }
      return;
    }
    const std::uint64_t key = next_key_++;
    FramedConn& conn = framed_[key];
    conn.key = key;
    conn.fd.reset(fd);
    conn.out.data = protocol::encode(protocol::make_hello());
  }
}

void Server::Impl::accept_meta() {
  for (int i = 0; i < kAcceptBurst; ++i) {
    const int fd = ::accept4(meta_listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        log(std::string("accept (metadata port): ") + std::strerror(errno));
      }
      return;
    }
    const std::uint64_t key = next_key_++;
    MetaConn& conn = meta_[key];
    conn.key = key;
    conn.fd.reset(fd);
  }
}

void Server::Impl::read_framed(FramedConn& conn) {
  const ssize_t n = ::recv(conn.fd.get(), io_buf_.get(), kIoBytes, MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    close_framed(conn, std::string("read failed: ") + std::strerror(errno));
    return;
  }
  if (n == 0) {
    close_framed(conn, "the peer closed the connection");
    return;
  }
  try {
    conn.decoder.feed(std::string_view(io_buf_.get(), static_cast<std::size_t>(n)));
    wipe_io(static_cast<std::size_t>(n));
  } catch (const protocol::ProtocolError& e) {
    wipe_io(static_cast<std::size_t>(n));
    close_framed(conn, std::string("protocol error: ") + e.what());
    return;
  }
  process_frames(conn);
}

void Server::Impl::process_frames(FramedConn& conn) {
  while (!conn.closed && accepts_input(conn)) {
    std::optional<protocol::Frame> frame;
    try {
      frame = conn.decoder.next();
    } catch (const protocol::ProtocolError& e) {
      close_framed(conn, std::string("protocol error: ") + e.what());
      return;
    }
    if (!frame) return;
    try {
      handle_frame(conn, std::move(*frame));
    } catch (const protocol::ProtocolError& e) {
      close_framed(conn, std::string("protocol error: ") + e.what());
      return;
    }
  }
}

void Server::Impl::read_meta(MetaConn& conn) {
  const ssize_t n = ::recv(conn.fd.get(), io_buf_.get(), kIoBytes, MSG_DONTWAIT);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) conn.closed = true;
    return;
  }
  if (n == 0) {
    conn.eof = true;
    return;
  }
  conn.in.append(io_buf_.get(), static_cast<std::size_t>(n));
  wipe_io(static_cast<std::size_t>(n));
  process_lines(conn);
}

void Server::Impl::process_lines(MetaConn& conn) {
  std::size_t start = 0;
  while (!conn.closed && conn.out.backlog() < options_.max_backlog_bytes) {
    const auto newline = conn.in.find('\n', start);
    if (newline == std::string::npos) break;
    if (newline - start > protocol::kMaxMetadataLineBytes) break;  // closed just below
    conn.out.data += handle_metadata_line(
        std::string_view(conn.in).substr(start, newline - start), store_);
    start = newline + 1;
  }
  conn.in.erase(0, start);
  // Peer-controlled: a line longer than the limit (terminated or not) ends the connection.
  const auto newline = conn.in.find('\n');
  const std::size_t line_len = newline == std::string::npos ? conn.in.size() : newline;
  if (line_len > protocol::kMaxMetadataLineBytes) {
    log("metadata connection closed: a line is over " +
        std::to_string(protocol::kMaxMetadataLineBytes) + " bytes");
    conn.closed = true;
  }
}

bool Server::Impl::flush(int fd, Output& out) {
  while (out.backlog() > 0) {
    const ssize_t n =
        ::send(fd, out.data.data() + out.pos, out.backlog(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return false;
    }
    out.pos += static_cast<std::size_t>(n);
  }
  if (out.pos == out.data.size()) {
    out.data.clear();
    out.pos = 0;
  } else if (out.pos > (1u << 20) && out.pos > out.data.size() / 2) {
    out.data.erase(0, out.pos);
    out.pos = 0;
  }
  return true;
}

void Server::Impl::close_framed(FramedConn& conn, const std::string& why) {
  if (conn.closed) return;
  conn.closed = true;
  if (why != "the peer closed the connection") log("connection closed: " + why);
  for (const auto& [id, key] : conn.execs) kill_exec(key);
  conn.execs.clear();
  conn.reads.clear();
  conn.writes.clear();  // AtomicFile's destructor removes each temp file
  conn.fd.reset();
}

void Server::Impl::collect_closed() {
  std::erase_if(framed_, [](const auto& item) { return item.second.closed; });
  std::erase_if(meta_, [](const auto& item) { return item.second.closed; });
}

}  // namespace forkvm::agent
