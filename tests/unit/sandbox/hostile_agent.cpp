#include "tests/unit/sandbox/hostile_agent.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "contract/protocol/hello.hpp"
#include "contract/protocol/messages.hpp"

namespace forkvm::test {

bool HostileWire::send(const nlohmann::json& header, const std::string& payload) {
  const std::string wire = protocol::encode(protocol::Frame{header, payload});
  size_t off = 0;
  while (off < wire.size()) {
    if (stop_) return false;
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const ssize_t n = ::send(fd_, wire.data() + off, wire.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  payload_sent_ += payload.size();
  return true;
}

std::string flood_pattern(uint64_t n) {
  std::string s(n, '\0');
  for (uint64_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

uint64_t HostileWire::flood(const nlohmann::json& header, uint64_t total) {
  // Each frame continues the pattern where the last one ended (at offset sent % 26).
  const std::string pattern = flood_pattern(protocol::kChunkBytes + 26);
  uint64_t sent = 0;
  while (sent < total) {
    const uint64_t n = std::min<uint64_t>(protocol::kChunkBytes, total - sent);
    if (!send(header, pattern.substr(sent % 26, n))) break;
    sent += n;
  }
  return sent;
}

HostileAgent::HostileAgent(Answer answer)
    : peer_([answer = std::move(answer)](int fd, std::atomic<bool>& stop) {
        protocol::FrameDecoder decoder;
        HostileWire wire(fd, stop);
        bool greeted = false;
        char buf[65536];
        while (!stop) {
          pollfd p{fd, POLLIN, 0};
          if (::poll(&p, 1, 20) <= 0) continue;
          const ssize_t n = ::read(fd, buf, sizeof buf);
          if (n <= 0) break;
          try {
            decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
            while (auto f = decoder.next()) {
              if (!greeted) {  // the host's hello
                greeted = true;
                wire.send(protocol::make_hello().header);
                continue;
              }
              answer(*f, wire);
            }
          } catch (const std::exception&) {
            break;  // the host sent something that is not a frame: a test bug; hang up
          }
        }
        ::close(fd);
      }) {}

}  // namespace forkvm::test
