// The origin of `forkvm-bench egress`: answers "GET /bytes?n=N" (N <= 1 GiB) with N bytes and
// Content-Length, then closes, on a TCP listener on 127.0.0.1 (reached through the egress
// proxy) and on a Unix listener (reached by the guest over bare vsock: the device connects a
// guest connection to host port P to "<vsock socket>_P"), with the same code for both. One
// thread per listener; connections are served one after another (the benchmark's client is
// sequential).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

namespace forkvm::bench {

class BytesOrigin {
 public:
  /// Listens on 127.0.0.1 (a free port) and on the Unix socket `unix_path`. Throws Error.
  explicit BytesOrigin(const std::string& unix_path);
  ~BytesOrigin();
  BytesOrigin(const BytesOrigin&) = delete;
  BytesOrigin& operator=(const BytesOrigin&) = delete;
  uint16_t tcp_port() const noexcept { return tcp_port_; }

 private:
  void serve(int listener);
  std::string unix_path_;
  int tcp_fd_ = -1;
  int unix_fd_ = -1;
  uint16_t tcp_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread tcp_thread_, unix_thread_;
};

}  // namespace forkvm::bench
