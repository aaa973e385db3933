#include "bench/exec_bench.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "bench/fork_common.hpp"
#include "bench/stats.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/sandbox.hpp"

namespace forkvm::bench {
namespace {

using Clock = std::chrono::steady_clock;

/// The guest port of the echo reference (the agent's --vsock-echo mode, started by exec).
constexpr uint32_t kEchoPort = 7777;

struct Options {
  unsigned n = 200;
  unsigned vcpus = 1;
  unsigned memory_mib = 512;
  unsigned file_mib = 16;
  unsigned file_rounds = 3;
  double timeout_s = 300;
  std::string image_dir = FORKVM_BENCH_IMAGE_DIR;
};

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

bool parse_uint(const char* s, unsigned* out) {
  char* end = nullptr;
  const unsigned long v = std::strtoul(s, &end, 10);
  if (end == s || *end != '\0' || v == 0 || v > 1000000) return false;
  *out = static_cast<unsigned>(v);
  return true;
}

bool parse_args(std::span<char* const> args, Options* o) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "-n" && has_value) {
      if (!parse_uint(args[++i], &o->n)) return false;
    } else if (a == "--vcpus" && has_value) {
      if (!parse_uint(args[++i], &o->vcpus)) return false;
    } else if (a == "--memory" && has_value) {
      if (!parse_uint(args[++i], &o->memory_mib)) return false;
    } else if (a == "--file-mib" && has_value) {
      if (!parse_uint(args[++i], &o->file_mib)) return false;
    } else if (a == "--file-rounds" && has_value) {
      if (!parse_uint(args[++i], &o->file_rounds)) return false;
    } else if (a == "--image-dir" && has_value) {
      o->image_dir = args[++i];
    } else if (a == "--timeout" && has_value) {
      unsigned t = 0;
      if (!parse_uint(args[++i], &t)) return false;
      o->timeout_s = t;
    } else {
      return false;
    }
  }
  return true;
}

/// A connection to a guest port through the sandbox's Firecracker-style vsock socket.
class VsockStream {
 public:
  VsockStream(const std::string& uds, uint32_t port) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw Error("socket: " + std::string(std::strerror(errno)));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, uds.c_str(), sizeof(addr.sun_path) - 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw Error("connect " + uds + ": " + std::strerror(errno));
    }
    timeval tv{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string line = "CONNECT " + std::to_string(port) + "\n";
    write_all(line);
    std::string reply;
    char c = 0;
    while (reply.size() < 64 && ::read(fd_, &c, 1) == 1) {
      reply.push_back(c);
      if (c == '\n') break;
    }
    if (reply.rfind("OK ", 0) != 0) {
      throw Error("CONNECT " + std::to_string(port) + " was refused (" + reply + ")");
    }
  }
  ~VsockStream() {
    if (fd_ >= 0) ::close(fd_);
  }
  VsockStream(const VsockStream&) = delete;
  VsockStream& operator=(const VsockStream&) = delete;

  void write_all(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = ::write(fd_, s.data(), s.size());
      if (n <= 0) throw Error("vsock write: " + std::string(std::strerror(errno)));
      s.remove_prefix(static_cast<size_t>(n));
    }
  }
  void read_exact(char* out, size_t len) {
    while (len > 0) {
      const ssize_t n = ::read(fd_, out, len);
      if (n <= 0) throw Error("vsock read: " + std::string(n == 0 ? "EOF" : std::strerror(errno)));
      out += n;
      len -= static_cast<size_t>(n);
    }
  }

 private:
  int fd_ = -1;
};

/// Starts the echo server in the guest and waits for its "listening" line.
std::unique_ptr<ExecProcess> start_echo_server(Sandbox& box) {
  std::mutex mu;
  std::condition_variable cv;
  std::string out;
  ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view s) {
    std::lock_guard lock(mu);
    out.append(s);
    cv.notify_all();
  };
  auto p = box.start({"/init", "--vsock-echo", std::to_string(kEchoPort)}, {}, cb);
  std::unique_lock lock(mu);
  if (!cv.wait_for(lock, std::chrono::seconds(60),
                   [&] { return out.find("listening") != std::string::npos; })) {
    throw Error("the guest echo server did not start");
  }
  return p;
}

void print_ratio(const char* what, const Summary& a, const Summary& ref) {
  if (ref.p50 <= 0 || ref.p90 <= 0) return;
  std::printf("  ratio %-24s p50 %.2fx  p90 %.2fx\n", what, a.p50 / ref.p50, a.p90 / ref.p90);
}

int run(const Options& o) {
  SandboxConfig c = image_sandbox_config(o.image_dir, o.vcpus, o.memory_mib);
  c.boot_timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000));
  const auto t_boot = Clock::now();
  auto box = Sandbox::create(c);
  std::printf("sandbox ready in %.1f ms (%u vCPU, %u MiB); n=%u per row\n", ms_since(t_boot),
              o.vcpus, o.memory_mib, o.n);

  auto echo_server = start_echo_server(*box);
  VsockStream echo(box->vsock_socket_path(), kEchoPort);

  // Interleaved, one of each per round, so drift (TCG, a busy host) hits every row alike.
  std::vector<double> echo_ms, ping_ms, exec_ms;
  char byte = 'x';
  for (unsigned i = 0; i < o.n; ++i) {
    auto t0 = Clock::now();
    echo.write_all(std::string_view(&byte, 1));
    echo.read_exact(&byte, 1);
    echo_ms.push_back(ms_since(t0));

    t0 = Clock::now();
    box->ping();
    ping_ms.push_back(ms_since(t0));

    t0 = Clock::now();
    const ExecResult r = box->exec({"true"});
    exec_ms.push_back(ms_since(t0));
    if (!r.ok()) throw Error("exec true failed in the guest");
  }
  const Summary echo_s = summarize(echo_ms);
  const Summary ping_s = summarize(ping_ms);
  const Summary exec_s = summarize(exec_ms);
  std::printf("round trips (ms):\n");
  std::printf("%s\n", format_row("vsock echo 1 B (reference)", echo_s).c_str());
  std::printf("%s\n", format_row("ping", ping_s).c_str());
  std::printf("%s\n", format_row("exec [\"true\"]", exec_s).c_str());
  print_ratio("ping / echo", ping_s, echo_s);
  print_ratio("exec true / echo", exec_s, echo_s);

  // File throughput: the same bytes written and read back, checked.
  const size_t bytes = static_cast<size_t>(o.file_mib) << 20;
  std::string data(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>((i * 2654435761u) >> 24);
  std::vector<double> up_mibs, down_mibs, echo_mibs;
  std::vector<char> echo_buf(1 << 16);
  for (unsigned r = 0; r < o.file_rounds; ++r) {
    auto t0 = Clock::now();
    box->write_file("/tmp/forkvm-bench.bin", data);
    up_mibs.push_back(o.file_mib / (ms_since(t0) / 1000.0));
    t0 = Clock::now();
    const std::string back = box->read_file("/tmp/forkvm-bench.bin");
    down_mibs.push_back(o.file_mib / (ms_since(t0) / 1000.0));
    if (back != data) throw Error("read_file returned different bytes");
    // Reference: the same volume through the echo server (both directions at once, 64 KiB
    // windows): the transport's throughput without the agent's framing and file I/O.
    t0 = Clock::now();
    for (size_t off = 0; off < bytes; off += echo_buf.size()) {
      echo.write_all(std::string_view(data.data() + off, echo_buf.size()));
      echo.read_exact(echo_buf.data(), echo_buf.size());
    }
    echo_mibs.push_back(o.file_mib / (ms_since(t0) / 1000.0));
  }
  box->remove("/tmp/forkvm-bench.bin");
  const Summary up = summarize(up_mibs), down = summarize(down_mibs), ref = summarize(echo_mibs);
  std::printf("file throughput, %u MiB x %u (MiB/s, higher is better):\n", o.file_mib, o.file_rounds);
  std::printf("  write_file  min %.1f  p50 %.1f  max %.1f\n", up.min, up.p50, up.max);
  std::printf("  read_file   min %.1f  p50 %.1f  max %.1f\n", down.min, down.p50, down.max);
  std::printf("  vsock echo  min %.1f  p50 %.1f  max %.1f  (reference: 64 KiB out and back)\n",
              ref.min, ref.p50, ref.max);
  if (ref.p50 > 0) {
    std::printf("  ratio write/echo p50 %.2f, read/echo p50 %.2f\n", up.p50 / ref.p50,
                down.p50 / ref.p50);
  }
  echo_server->cancel();
  box->shutdown();
  return 0;
}

}  // namespace

int exec_bench(std::span<char* const> args) {
  Options o;
  if (!parse_args(args, &o)) {
    std::fprintf(stderr,
                 "usage: forkvm-bench exec [-n N] [--vcpus N] [--memory MiB] [--file-mib M] "
                 "[--file-rounds R] [--image-dir DIR] [--timeout S]\n");
    return 2;
  }
  try {
    return run(o);
  } catch (const Error& e) {
    std::fprintf(stderr, "forkvm-bench exec: %s\n", e.what());
    return 1;
  }
}

}  // namespace forkvm::bench
