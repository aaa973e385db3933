// The origin of the network benchmarks: answers "GET /bytes?n=N" (N <= 1 GiB) with N bytes and
// Content-Length, then closes, with the same code on every listener it has:
// - TCP on an IPv4 address (by default 127.0.0.1, reached through the egress proxy), possibly
//   inside another network namespace (the virtio-net bench's 172.16.0.1 behind a TAP);
// - optionally TLS on a second TCP port of that address (the HTTPS rows of the egress bench);
// - optionally a Unix listener (reached by the guest over bare vsock: the device connects a
//   guest connection to host port P to "<vsock socket>_P").
// One thread per listener; connections are served one after another (the benchmarks' clients
// are sequential).
#pragma once

#include <utility>  // before Boost.Asio 1.74's headers, which use std::exchange

#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace forkvm::bench {

/// Where BytesOrigin listens.
struct BytesOriginConfig {
  std::string tcp_address = "127.0.0.1";  ///< IPv4 address of the TCP listener(s)
  uint16_t tcp_port = 0;                  ///< the plain listener's port (0: a free one)
  std::string netns;  ///< create the TCP listeners inside this network namespace file ("" here)
  /// Non-null: a TLS listener too (a free port of tcp_address), with this server context.
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::string unix_path;  ///< a Unix listener too ("" none); unlinked by the destructor
};

class BytesOrigin {
 public:
  /// Starts listening. Throws Error naming the listener that failed.
  explicit BytesOrigin(BytesOriginConfig config);
  ~BytesOrigin();
  BytesOrigin(const BytesOrigin&) = delete;
  BytesOrigin& operator=(const BytesOrigin&) = delete;
  uint16_t tcp_port() const noexcept { return tcp_port_; }
  /// The TLS listener's port (0 without one).
  uint16_t tls_port() const noexcept { return tls_port_; }

 private:
  void serve(int listener, bool tls);
  BytesOriginConfig config_;
  std::vector<int> fds_;  ///< every listener, closed by the destructor
  uint16_t tcp_port_ = 0;
  uint16_t tls_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

}  // namespace forkvm::bench
