// Test helper: the host end of a vsock connection (the Unix socket a VsockDevice forwards to),
// for the device and snapshot tests. The sockets are blocking with a receive timeout set by the
// test, so every read here ends.
#pragma once

#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "base/fd.hpp"

namespace forkvm::vsock::testing {

/// Sends all of `data` in one send() (a failed or short send fails the test).
inline void host_write(const Fd& s, const std::string& data) {
  ASSERT_EQ(::send(s.get(), data.data(), data.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(data.size()));
}

/// Reads up to and including a '\n' (at most 64 bytes; less at EOF or the receive timeout).
inline std::string host_read_line(const Fd& s) {
  std::string line;
  char c = 0;
  while (line.size() < 64 && ::recv(s.get(), &c, 1, 0) == 1) {
    line.push_back(c);
    if (c == '\n') break;
  }
  return line;
}

/// True when the device closed the host socket: EOF, or ECONNRESET when it closed with bytes
/// sent to it still unread (AF_UNIX reports that as a reset). A timeout is not a close.
inline bool host_sees_close(const Fd& s) {
  char c;
  const ssize_t n = ::recv(s.get(), &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

}  // namespace forkvm::vsock::testing
