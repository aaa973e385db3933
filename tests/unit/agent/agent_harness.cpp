#include "tests/unit/agent/agent_harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "contract/protocol/hello.hpp"

namespace forkvm::agent::test {
namespace {

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<std::int64_t>(0, left.count()));
}

// Waits for `fd` to be readable; false at the deadline.
bool wait_readable(int fd, Clock::time_point deadline) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    const int n = ::poll(&p, 1, ms_left(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
  }
}

void write_all(int fd, const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
}

bool is_terminal(const Frame& frame) {
  const auto& type = frame.header["type"].get_ref<const std::string&>();
  return type == "ok" || type == "error" || type == "exit";
}

}  // namespace

AgentHost::AgentHost() : dir_(tmp_.path().string()) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork");
  if (pid_ == 0) {
    ::dup2(out[1], 1);
    const std::string listen = agent_socket(), meta = metadata_socket(), state = state_dir();
    ::execl(FORKVM_AGENT_HOST_PATH, "forkvm-agent-host", "--listen", listen.c_str(),
            "--metadata", meta.c_str(), "--state-dir", state.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  const auto deadline = Clock::now() + kWait;
  std::string seen;
  while (seen.find("listening\n") == std::string::npos) {
    char buf[64];
    if (!wait_readable(out[0], deadline)) break;
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    seen.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  if (seen.find("listening\n") == std::string::npos) {
    throw std::runtime_error("forkvm-agent-host did not print 'listening' (got '" + seen + "')");
  }
}

AgentHost::~AgentHost() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + 10s;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() >= deadline) {
        ADD_FAILURE() << "forkvm-agent-host did not stop on SIGTERM";
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
  }
}

bool AgentHost::alive() {
  int status = 0;
  return ::waitpid(pid_, &status, WNOHANG) == 0;
}

int connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("connect " + path + ": " + std::strerror(errno));
  }
  return fd;
}

Client::Client(const std::string& path, bool hello) : fd_(connect_unix(path)) {
  if (!hello) return;
  const auto deadline = Clock::now() + kWait;
  if (!read_one(deadline)) throw std::runtime_error("no hello from the agent");
  const Frame first = stash_.front();
  stash_.pop_front();
  if (protocol::negotiate({}, first.header) != protocol::kProtocolVersion) {
    throw std::runtime_error("unexpected version");
  }
  send_raw(protocol::encode(protocol::make_hello()));
}

Client::~Client() { close(); }

void Client::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Client::send(const json& header, const std::string& payload) {
  send_raw(protocol::encode({header, payload}));
}

void Client::send_raw(const std::string& bytes) { write_all(fd_, bytes); }

bool Client::read_one(Clock::time_point deadline) {
  for (;;) {
    if (auto frame = decoder_.next()) {
      stash_.push_back(std::move(*frame));
      return true;
    }
    if (eof_ || !wait_readable(fd_, deadline)) return false;
    std::string buf(256 * 1024, '\0');
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    decoder_.feed(std::string_view(buf.data(), static_cast<std::size_t>(n)));
  }
}

std::optional<Frame> Client::next_for(std::uint64_t id, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::size_t checked = 0;
  for (;;) {
    for (; checked < stash_.size(); ++checked) {
      if (stash_[checked].header["id"].get<std::uint64_t>() == id) {
        Frame frame = std::move(stash_[checked]);
        stash_.erase(stash_.begin() + static_cast<std::ptrdiff_t>(checked));
        return frame;
      }
    }
    if (!read_one(deadline)) return std::nullopt;
  }
}

Result Client::collect(std::uint64_t id, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Result result;
  for (;;) {
    auto frame = next_for(id, std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::max(Clock::duration::zero(), deadline - Clock::now())));
    if (!frame) {
      throw std::runtime_error("no terminal frame for id " + std::to_string(id) +
                               " before the deadline");
    }
    const auto& type = frame->header["type"].get_ref<const std::string&>();
    if (type == "stderr") {
      result.err += frame->payload;
    } else if (type == "stdout" || type == "file_data") {
      result.out += frame->payload;
    }
    result.frames.push_back(*frame);
    if (is_terminal(*frame)) {
      result.terminal = std::move(*frame);
      return result;
    }
  }
}

Result Client::call(const json& request, const std::string& payload,
                    std::chrono::milliseconds timeout) {
  send(request, payload);
  return collect(request["id"].get<std::uint64_t>(), timeout);
}

bool Client::closed_by_peer(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  try {
    while (read_one(deadline)) stash_.clear();
  } catch (const protocol::ProtocolError&) {
    return false;
  }
  return eof_;
}

LineClient::LineClient(const std::string& path) : fd_(connect_unix(path)) {}
LineClient::~LineClient() {
  if (fd_ >= 0) ::close(fd_);
}

void LineClient::send(const std::string& bytes) { write_all(fd_, bytes); }

std::optional<std::string> LineClient::line(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string out = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return out;
    }
    if (eof_ || !wait_readable(fd_, deadline)) return std::nullopt;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return std::nullopt;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

json LineClient::call(const json& request) {
  send(request.dump() + "\n");
  const auto answer = line();
  if (!answer) throw std::runtime_error("no answer line for " + request.dump());
  return json::parse(*answer);
}

bool LineClient::closed_by_peer(std::chrono::milliseconds timeout) {
  while (line(timeout)) {
  }
  return eof_;
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_whole(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace forkvm::agent::test
