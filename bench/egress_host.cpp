#include "bench/egress_host.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/text.hpp"
#include "bench/bytes_origin.hpp"
#include "bench/scratch_dir.hpp"
#include "bench/stats.hpp"
#include "forkvm/errors.hpp"
#include "net/egress_proxy.hpp"
#include "net/egress_rules.hpp"

namespace forkvm::bench {
namespace {

using Clock = std::chrono::steady_clock;

/// One GET over a fresh connection to the Unix socket `path`: `request` out, then the header
/// and exactly `size` bytes of body in (1 MiB reads). Milliseconds. Throws Error.
double get_over_unix(const std::string& path, const std::string& request, uint64_t size) {
  const auto t0 = Clock::now();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.c_str(), std::min(path.size(), sizeof un.sun_path - 1));
  timeval tv{60, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&un), sizeof un) != 0 ||
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    throw Error("connect/send to " + path + ": " + errno_text(err));
  }
  std::vector<char> buf(1 << 20);
  std::string head;
  uint64_t body = 0;
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    if (head.find("\r\n\r\n") == std::string::npos) {
      head.append(buf.data(), static_cast<size_t>(n));
      const auto end = head.find("\r\n\r\n");
      if (end != std::string::npos) body = head.size() - end - 4;
    } else {
      body += static_cast<uint64_t>(n);
    }
    if (body >= size && head.find("\r\n\r\n") != std::string::npos) break;
  }
  ::close(fd);
  if (head.rfind("HTTP/1.1 200", 0) != 0 || body != size) {
    throw Error("GET through " + path + ": " + std::to_string(body) + " of " +
                std::to_string(size) + " bytes; head: " + head.substr(0, 200));
  }
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

int egress_host_bench(unsigned n, unsigned small_bytes, unsigned mib, unsigned rounds) {
  const auto scratch = scratch_dir("egress-host");
  if (!scratch) return 3;
  const std::string dir = scratch->path();
  int status = 0;
  try {
    BytesOriginConfig oc;
    oc.unix_path = dir + "/origin";
    BytesOrigin origin(oc);
    EgressPolicy policy;
    EgressRule rule;
    rule.host = "127.0.0.1";
    policy.rules.push_back(rule);
    net::EgressProxy proxy(dir + "/proxy", std::make_shared<const net::CompiledPolicy>(policy),
                           [](const EgressEvent&) {});
    const std::string port = std::to_string(origin.tcp_port());
    auto request = [&](uint64_t size, bool via_proxy) {
      const std::string target = "/bytes?n=" + std::to_string(size);
      return via_proxy ? "GET http://127.0.0.1:" + port + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\n\r\n"
                       : "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n";
    };
    std::vector<double> small_direct, small_proxy, big_direct, big_proxy;
    const uint64_t big = static_cast<uint64_t>(mib) << 20;
    for (unsigned i = 0; i < n; ++i) {  // interleaved, so drift hits both alike
      small_direct.push_back(get_over_unix(oc.unix_path, request(small_bytes, false), small_bytes));
      small_proxy.push_back(get_over_unix(proxy.path(), request(small_bytes, true), small_bytes));
    }
    for (unsigned i = 0; i < rounds; ++i) {
      big_direct.push_back(mib / (get_over_unix(oc.unix_path, request(big, false), big) / 1000));
      big_proxy.push_back(mib / (get_over_unix(proxy.path(), request(big, true), big) / 1000));
    }
    std::printf("egress --host-only: the proxy alone, a host client on its Unix socket\n");
    std::printf("  GET of %u bytes, a new connection each, n=%u (ms):\n", small_bytes, n);
    const Summary sd = summarize(small_direct), sp = summarize(small_proxy);
    std::printf("%s\n", format_row("  origin's Unix socket (reference)", sd).c_str());
    std::printf("%s\n", format_row("  through the egress proxy", sp).c_str());
    std::printf("    ratio p50 %.2fx  p99 %.2fx\n", sp.p50 / sd.p50, sp.p99 / sd.p99);
    const Summary bd = summarize(big_direct), bp = summarize(big_proxy);
    std::printf("  download of %u MiB x %u (MiB/s, higher is better):\n", mib, rounds);
    std::printf("%s\n", format_row("  origin's Unix socket (reference)", bd, "MiB/s").c_str());
    std::printf("%s\n", format_row("  through the egress proxy", bp, "MiB/s").c_str());
    std::printf("    ratio p50 %.2f\n", bp.p50 / bd.p50);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench egress --host-only: %s\n", e.what());
    status = 1;
  }
  return status;
}

}  // namespace forkvm::bench
