#include "guest-init/port_relay.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "contract/net_ports.hpp"
#include "guest-init/relay_session.hpp"
#include "guest-init/tcp_loopback.hpp"

namespace forkvm::relay {
namespace {

using namespace std::chrono_literals;

// A listener that failed to accept for lack of descriptors or memory sleeps this long: it
// stays readable, and polling it at once again would spin.
constexpr auto kAcceptPause = 100ms;
// Log lines allowed per window; beyond them lines are only counted.
constexpr int kLogBurst = 10;
constexpr auto kLogWindow = 1s;

// Passes at most kLogBurst lines per kLogWindow to the user's callback and reports how many
// it dropped, so a guest process hammering a dead egress path cannot flood the console.
class LogLimiter {
 public:
  explicit LogLimiter(const std::function<void(std::string_view)>& sink) : sink_(sink) {}

  void operator()(const std::string& line) noexcept {
    if (!sink_) return;
    const Clock::time_point now = Clock::now();
    if (now - window_start_ >= kLogWindow) {
      if (dropped_ != 0) emit(std::to_string(dropped_) + " more log lines suppressed");
      window_start_ = now;
      in_window_ = 0;
      dropped_ = 0;
    }
    if (in_window_ >= kLogBurst) {
      ++dropped_;
      return;
    }
    ++in_window_;
    emit(line);
  }

 private:
  void emit(const std::string& line) noexcept {
    try {
      sink_(line);
    } catch (...) {  // a logger's failure must not end the relay
    }
  }
  const std::function<void(std::string_view)>& sink_;
  Clock::time_point window_start_{};
  int in_window_ = 0;
  std::size_t dropped_ = 0;
};

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    throw std::system_error(errno, std::generic_category(), "fcntl O_NONBLOCK on a listener");
  }
}

// Milliseconds from `now` to `deadline` for poll(), rounded up (so the deadline has passed
// when poll returns), in [0, INT_MAX].
int poll_timeout(Clock::time_point now, Clock::time_point deadline) {
  if (deadline <= now) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::min<long long>(ms, INT_MAX));
}

}  // namespace

// The relay thread's state: the sessions and the listeners' pauses. Lives on that thread.
class PortRelay::Loop {
 public:
  explicit Loop(PortRelay& relay) : relay_(relay), log_(relay.options_.log) {}

  void run() {
    std::vector<pollfd> fds;
    // Entries: [0] stop eventfd, [1] egress listener, [2] forward listener, then two per
    // session in sessions_ order (see Session::poll_entries).
    constexpr std::size_t kFirstSession = 3;
    while (true) {
      const Clock::time_point before = Clock::now();
      fds.assign(kFirstSession + 2 * sessions_.size(), pollfd{-1, 0, 0});
      fds[0] = {relay_.stop_fd_.get(), POLLIN, 0};
      std::optional<Clock::time_point> wake;
      const auto earliest = [&wake](Clock::time_point t) { wake = wake ? std::min(*wake, t) : t; };
      for (std::size_t i = 0; i < listeners_.size(); ++i) {
        if (!listeners_[i]->valid()) continue;
        if (before < paused_until_[i]) {
          earliest(paused_until_[i]);
        } else {
          fds[1 + i] = {listeners_[i]->get(), POLLIN, 0};
        }
      }
      for (std::size_t i = 0; i < sessions_.size(); ++i) {
        sessions_[i]->poll_entries(fds[kFirstSession + 2 * i], fds[kFirstSession + 2 * i + 1]);
        if (const auto deadline = sessions_[i]->deadline()) earliest(*deadline);
      }
      const int timeout = wake ? poll_timeout(before, *wake) : -1;
      const int ready = ::poll(fds.data(), fds.size(), timeout);
      if (ready < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::generic_category(), "poll");
      }
      if (fds[0].revents != 0) return;  // stop()
      ++wakes_;
      const Clock::time_point now = Clock::now();
      // Sessions before accepts: the entries match sessions_ only until new ones are added.
      for (std::size_t i = 0; i < sessions_.size(); ++i) {
        serve(i, fds[kFirstSession + 2 * i].revents, fds[kFirstSession + 2 * i + 1].revents, now);
      }
      std::erase(sessions_, nullptr);
      for (std::size_t i = 0; i < listeners_.size(); ++i) {
        if (fds[1 + i].revents != 0) accept_some(i, now);
      }
      publish_stats();
    }
  }

 private:
  // Runs one session's handle(); a session whose handling throws (memory, a dial callback)
  // is dropped alone.
  void serve(std::size_t i, short client_revents, short upstream_revents, Clock::time_point now) {
    bool keep = false;
    try {
      keep = sessions_[i]->handle(client_revents, upstream_revents, now, relay_.dial_forward_,
                                  logger_);
      if (keep) peak_ = std::max(peak_, sessions_[i]->buffered());
    } catch (const std::exception& e) {
      log_(std::string("connection dropped: ") + e.what());
    }
    if (!keep) sessions_[i].reset();
  }

  // Accepts at most max_accepts_per_wake connections on listener `which` (0 egress,
  // 1 forward).
  void accept_some(std::size_t which, Clock::time_point now) {
    const int listener = listeners_[which]->get();
    for (std::size_t n = 0; n < relay_.options_.max_accepts_per_wake; ++n) {
      agent::UniqueFd conn(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!conn.valid()) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        log_(std::string(which == 0 ? "egress" : "forward") + " accept: " + std::strerror(errno));
        paused_until_[which] = now + kAcceptPause;  // EMFILE, ENOBUFS, ...: try again later
        return;
      }
      ++accepted_;
      try {
        admit(which, std::move(conn), now);
      } catch (const std::exception& e) {
        log_(std::string("connection dropped at accept: ") + e.what());
      }
    }
  }

  void admit(std::size_t which, agent::UniqueFd conn, Clock::time_point now) {
    const bool is_egress = which == 0;
    if (sessions_.size() >= relay_.options_.max_sessions) {
      ++refused_full_;
      log_(std::string(is_egress ? "egress" : "forward") + ": " +
           std::to_string(sessions_.size()) + " connections open, closing a new one");
      if (!is_egress) {  // best effort: the line almost always fits the empty socket buffer
        const std::string line = net::encode_forward_error("too many connections");
        (void)::send(conn.get(), line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      return;  // closes it
    }
    if (!is_egress) {
      sessions_.push_back(Session::forward(std::move(conn), relay_.options_, now));
      return;
    }
    set_no_delay(conn.get());  // the guest's TCP client (the forward side is vsock)
    Dialed dialed = relay_.dial_egress_();
    if (!dialed.fd.valid()) {
      log_(std::string("egress: dial failed: ") +
           std::strerror(dialed.error != 0 ? dialed.error : EIO));
      const linger abort_close{1, 0};  // a reset, not an empty answer
      ::setsockopt(conn.get(), SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
      return;
    }
    sessions_.push_back(Session::egress(std::move(conn), std::move(dialed.fd), relay_.options_, now));
  }

  void publish_stats() {
    RelayStats stats;
    stats.sessions = sessions_.size();
    for (const auto& session : sessions_) {
      if (session->relaying()) ++stats.relaying;
      stats.buffered_bytes += session->buffered();
    }
    stats.accepted = accepted_;
    stats.refused_full = refused_full_;
    stats.peak_session_bytes = peak_;
    stats.wakes = wakes_;
    stats.running = true;
    const std::lock_guard lock(relay_.stats_mutex_);
    relay_.stats_ = stats;
  }

  PortRelay& relay_;
  LogLimiter log_;
  const LogFn logger_ = [this](const std::string& line) { log_(line); };
  std::array<agent::UniqueFd*, 2> listeners_{&relay_.egress_listener_, &relay_.forward_listener_};
  std::array<Clock::time_point, 2> paused_until_{};
  std::vector<std::unique_ptr<Session>> sessions_;
  std::size_t accepted_ = 0;
  std::size_t refused_full_ = 0;
  std::size_t peak_ = 0;
  std::size_t wakes_ = 0;
};

PortRelay::PortRelay(agent::UniqueFd egress_listener, DialEgress dial_egress,
                     agent::UniqueFd forward_listener, DialForward dial_forward,
                     RelayOptions options)
    : egress_listener_(std::move(egress_listener)),
      forward_listener_(std::move(forward_listener)),
      dial_egress_(std::move(dial_egress)),
      dial_forward_(std::move(dial_forward)),
      options_(std::move(options)),
      stop_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!stop_fd_.valid()) throw std::system_error(errno, std::generic_category(), "eventfd");
  if (egress_listener_.valid()) set_nonblocking(egress_listener_.get());
  if (forward_listener_.valid()) set_nonblocking(forward_listener_.get());
}

PortRelay::~PortRelay() { stop(); }

void PortRelay::start() {
  if (thread_.joinable()) return;
  {
    const std::lock_guard lock(stats_mutex_);
    stats_.running = true;
  }
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    const std::lock_guard lock(stats_mutex_);
    stats_.running = false;
    throw;
  }
}

void PortRelay::stop() noexcept {
  const std::uint64_t one = 1;
  (void)!::write(stop_fd_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

RelayStats PortRelay::stats() const {
  const std::lock_guard lock(stats_mutex_);
  return stats_;
}

void PortRelay::run() noexcept {
  // Nothing may escape the thread: std::terminate would end PID 1 and the VM with it.
  try {
    Loop loop(*this);
    loop.run();
  } catch (const std::exception& e) {
    if (options_.log) {
      try {
        options_.log(std::string("port relay stopped: ") + e.what());
      } catch (...) {
      }
    }
  } catch (...) {
  }
  // The sessions closed with the loop; closing the listeners makes new connects fail at once
  // instead of waiting in a backlog nobody accepts from.
  egress_listener_.reset();
  forward_listener_.reset();
  const std::lock_guard lock(stats_mutex_);
  stats_.running = false;
  stats_.sessions = 0;
  stats_.relaying = 0;
  stats_.buffered_bytes = 0;
}

}  // namespace forkvm::relay
