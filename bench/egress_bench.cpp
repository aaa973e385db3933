#include "bench/egress_bench.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bytes_origin.hpp"
#include "bench/guest_bench_options.hpp"
#include "bench/stats.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/sandbox.hpp"

namespace forkvm::bench {
namespace {

using Clock = std::chrono::steady_clock;

/// The host vsock port of the bare reference stream (the device connects the guest to
/// "<vsock socket>_<port>", where BytesOrigin listens).
constexpr unsigned kReferencePort = 9999;

// The guest's side: for each round, one small GET through the proxy and one over bare vsock
// (interleaved, so drift hits both alike), then the large downloads, each path in turn. Every
// body's length is checked. Prints one JSON object of milliseconds.
constexpr const char* kGuestScript = R"PY(
import json, socket, sys, time, urllib.request
port, n, small, big, rounds = (int(a) for a in sys.argv[1:6])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({'http': 'http://127.0.0.1:3128'}))
def via_proxy(size):
    t = time.perf_counter()
    body = opener.open('http://127.0.0.1:%d/bytes?n=%d' % (port, size), timeout=120).read()
    assert len(body) == size, len(body)
    return (time.perf_counter() - t) * 1000
def via_vsock(size):
    t = time.perf_counter()
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect((2, %REF%))
    s.sendall(b'GET /bytes?n=%d HTTP/1.1\r\nHost: x\r\n\r\n' % size)
    data = bytearray()
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = bytes(data).partition(b'\r\n\r\n')
    assert len(body) == size, len(body)
    return (time.perf_counter() - t) * 1000
out = {'small_proxy': [], 'small_vsock': [], 'big_proxy': [], 'big_vsock': []}
for _ in range(n):
    out['small_proxy'].append(via_proxy(small))
    out['small_vsock'].append(via_vsock(small))
for _ in range(rounds):
    out['big_proxy'].append(via_proxy(big))
    out['big_vsock'].append(via_vsock(big))
print(json.dumps(out))
)PY";

std::vector<double> doubles(const nlohmann::json& j) { return j.get<std::vector<double>>(); }

}  // namespace

int egress_bench(std::span<char* const> args) {
  GuestBenchOptions o;
  o.n = 200;
  o.memory_mib = 512;
  o.image_dir = FORKVM_BENCH_IMAGE_DIR;
  unsigned small_bytes = 1024;
  unsigned big_mib = 64;
  unsigned rounds = 3;
  try {
    parse_guest_bench_options(args, o, [&](const std::string& opt, const auto& next) {
      if (opt == "--small-bytes") small_bytes = static_cast<unsigned>(std::stoul(next()));
      else if (opt == "--big-mib") big_mib = static_cast<unsigned>(std::stoul(next()));
      else if (opt == "--rounds") rounds = static_cast<unsigned>(std::stoul(next()));
      else return false;
      return true;
    });
    if (big_mib == 0 || big_mib > 1024 || rounds == 0) {
      throw std::runtime_error("--big-mib must be 1..1024 and --rounds nonzero");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "forkvm-bench egress: %s\nusage: forkvm-bench egress [-n N] [--vcpus N] "
                 "[--memory MiB] [--image-dir DIR] [--timeout S] [--small-bytes B] "
                 "[--big-mib M] [--rounds R]\n",
                 e.what());
    return 2;
  }
  try {
    SandboxConfig c;
    c.vm.kernel = o.image_dir + "/bzImage";
    c.vm.initramfs = o.image_dir + "/initramfs.cpio.gz";
    c.vm.vcpus = o.vcpus;
    c.vm.memory_mib = o.memory_mib;
    c.root_filesystem = o.image_dir + "/rootfs.ext4";  // python3 for the guest's client
    c.boot_timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000));
    EgressRule origin;
    origin.host = "127.0.0.1";
    c.egress.policy.rules.push_back(origin);
    auto box = Sandbox::create(c);
    BytesOrigin server(box->vsock_socket_path() + "_" + std::to_string(kReferencePort));
    std::string script = kGuestScript;
    script.replace(script.find("%REF%"), 5, std::to_string(kReferencePort));
    box->write_file("/tmp/egress_bench.py", script);
    ExecOptions exec;
    // The origin is the host's 127.0.0.1: urllib would bypass the proxy for the guest's
    // default NO_PROXY (localhost,127.0.0.1,::1).
    exec.env = {{"NO_PROXY", ""}, {"no_proxy", ""}};
    exec.timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000) * 10);
    const auto t0 = Clock::now();
    const ExecResult r = box->exec(
        {"python3", "/tmp/egress_bench.py", std::to_string(server.tcp_port()),
         std::to_string(o.n), std::to_string(small_bytes),
         std::to_string(static_cast<uint64_t>(big_mib) << 20), std::to_string(rounds)},
        exec);
    if (r.exit_code != 0) {
      throw Error("the guest's script failed: " + r.stderr_data.substr(0, 2000));
    }
    const auto j = nlohmann::json::parse(r.stdout_data);
    const Summary sp = summarize(doubles(j["small_proxy"]));
    const Summary sv = summarize(doubles(j["small_vsock"]));
    auto mib_s = [&](const std::vector<double>& ms) {
      std::vector<double> out;
      for (double v : ms) out.push_back(big_mib / (v / 1000.0));
      return summarize(out);
    };
    const Summary bp = mib_s(doubles(j["big_proxy"]));
    const Summary bv = mib_s(doubles(j["big_vsock"]));
    std::printf("egress: %u vCPU, %u MiB guest; measured in the guest by python3 (%.1f s)\n",
                o.vcpus, o.memory_mib,
                std::chrono::duration<double>(Clock::now() - t0).count());
    std::printf("GET of %u bytes, a new connection each, n=%u (ms):\n", small_bytes, o.n);
    std::printf("%s\n", format_row("bare vsock stream (reference)", sv).c_str());
    std::printf("%s\n", format_row("through the egress proxy", sp).c_str());
    if (sv.p50 > 0 && sv.p99 > 0) {
      std::printf("  ratio proxy/vsock  p50 %.2fx  p99 %.2fx\n", sp.p50 / sv.p50, sp.p99 / sv.p99);
    }
    std::printf("download of %u MiB x %u (MiB/s, higher is better):\n", big_mib, rounds);
    std::printf("%s\n", format_row("bare vsock stream (reference)", bv, "MiB/s").c_str());
    std::printf("%s\n", format_row("through the egress proxy", bp, "MiB/s").c_str());
    if (bv.p50 > 0) std::printf("  ratio proxy/vsock  p50 %.2f (goal >= 0.8)\n", bp.p50 / bv.p50);
    box->shutdown();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench egress: %s\n", e.what());
    return 1;
  }
}

}  // namespace forkvm::bench
