#include "bench/egress_bench.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/text.hpp"
#include "bench/bytes_origin.hpp"
#include "bench/egress_host.hpp"
#include "bench/guest_bench_options.hpp"
#include "bench/scratch_dir.hpp"
#include "bench/stats.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/sandbox.hpp"
#include "net/tls_authority.hpp"

namespace forkvm::bench {
namespace {

using Clock = std::chrono::steady_clock;

/// The host vsock port of the bare reference stream (the device connects the guest to
/// "<vsock socket>_<port>", where BytesOrigin listens).
constexpr unsigned kReferencePort = 9999;

// The guest's side: for each round, one small GET through the proxy and one over bare vsock
// (interleaved, so drift hits both alike), then the same for HTTPS: a CONNECT tunnel to
// 127.0.0.1 (no binding: the proxy only copies bytes) against a CONNECT to localhost, which has
// a secret binding, so the proxy terminates TLS with the sandbox's CA, puts the secret into the
// Authorization header and re-encrypts to the origin. Both HTTPS paths reach the same TLS
// listener with SNI "localhost" and send the placeholder; the guest trusts the sandbox's
// bundle plus the origin's own CA. Then the large downloads, each path in turn. Every body's
// length is checked. Every path has the same client code (a raw socket, reading exactly
// Content-Length bytes), so only the transport differs. Prints one JSON object of milliseconds.
constexpr const char* kGuestScript = R"PY(
import json, os, socket, ssl, sys, time
port, tls_port, n, small, big, rounds = (int(a) for a in sys.argv[1:7])
ctx = ssl.create_default_context(cafile='/run/forkvm/ca-bundle.pem')
ctx.load_verify_locations(cafile='/tmp/egress_bench_origin_ca.pem')
key = os.environ['BENCH_KEY'].encode()
# create_connection() encodes the host with the idna codec, which Python imports on first use
# (~170 ms in kvm-lab): done here, so no path's first request pays for it.
socket.getaddrinfo('127.0.0.1', 3128)
def read_response(s, size):
    data = bytearray()
    while b'\r\n\r\n' not in data:
        chunk = s.recv(1 << 16)
        assert chunk, 'no response header'
        data += chunk
    head, _, body = bytes(data).partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200'), head[:200]
    got = len(body)
    while got < size:
        chunk = s.recv(1 << 20)
        assert chunk, 'short body: %d of %d' % (got, size)
        got += len(chunk)
    assert got == size, got
def via_proxy(size):
    t = time.perf_counter()
    s = socket.create_connection(('127.0.0.1', 3128), timeout=120)
    s.sendall(b'GET http://127.0.0.1:%d/bytes?n=%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n'
              % (port, size, port))
    read_response(s, size)
    s.close()
    return (time.perf_counter() - t) * 1000
def via_vsock(size):
    t = time.perf_counter()
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect((2, %REF%))
    s.sendall(b'GET /bytes?n=%d HTTP/1.1\r\nHost: x\r\n\r\n' % size)
    read_response(s, size)
    s.close()
    return (time.perf_counter() - t) * 1000
def via_connect(host, size):
    t = time.perf_counter()
    s = socket.create_connection(('127.0.0.1', 3128), timeout=120)
    s.sendall(b'CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n' % (host, tls_port, host, tls_port))
    reply = b''
    while b'\r\n\r\n' not in reply:
        chunk = s.recv(4096)
        assert chunk, 'no CONNECT reply'
        reply += chunk
    assert reply.startswith(b'HTTP/1.1 200'), reply[:200]
    s = ctx.wrap_socket(s, server_hostname='localhost')
    s.sendall(b'GET /bytes?n=%d HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n\r\n'
              % (size, key))
    read_response(s, size)
    s.close()
    return (time.perf_counter() - t) * 1000
out = {k: [] for k in ('small_proxy', 'small_vsock', 'small_tunnel', 'small_intercept',
                       'big_proxy', 'big_vsock', 'big_tunnel', 'big_intercept')}
# Each path's first request (connections set up, a leaf certificate minted) is reported on
# its own, outside the distributions.
out['first'] = {'proxy': via_proxy(small), 'vsock': via_vsock(small),
                'tunnel': via_connect(b'127.0.0.1', small), 'intercept': via_connect(b'localhost', small)}
for _ in range(n):
    out['small_proxy'].append(via_proxy(small))
    out['small_vsock'].append(via_vsock(small))
    out['small_tunnel'].append(via_connect(b'127.0.0.1', small))
    out['small_intercept'].append(via_connect(b'localhost', small))
for _ in range(rounds):
    out['big_proxy'].append(via_proxy(big))
    out['big_vsock'].append(via_vsock(big))
    out['big_tunnel'].append(via_connect(b'127.0.0.1', big))
    out['big_intercept'].append(via_connect(b'localhost', big))
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
  bool host_only = false;
  try {
    parse_guest_bench_options(args, o, [&](const std::string& opt, const auto& next) {
      if (opt == "--small-bytes") small_bytes = static_cast<unsigned>(std::stoul(next()));
      else if (opt == "--big-mib") big_mib = static_cast<unsigned>(std::stoul(next()));
      else if (opt == "--rounds") rounds = static_cast<unsigned>(std::stoul(next()));
      else if (opt == "--host-only") host_only = true;
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
                 "[--big-mib M] [--rounds R] [--host-only]\n",
                 e.what());
    return 2;
  }
  if (host_only) return egress_host_bench(o.n, small_bytes, big_mib, rounds);
  // The HTTPS origin's certificate comes from a CA of the bench's own, which plays the public
  // one: the proxy trusts it as an upstream anchor and the guest's client for the tunnel.
  const auto scratch = scratch_dir("egress");
  if (!scratch) return 3;
  const std::string dir = scratch->path();
  const std::string ca_file = dir + "/origin-ca.pem";
  int status = 0;
  try {
    const auto public_ca = net::TlsAuthority::create("forkvm-bench public CA");
    std::ofstream(ca_file) << public_ca->ca_pem();
    SandboxConfig c;
    c.vm.kernel = o.image_dir + "/bzImage";
    c.vm.initramfs = o.image_dir + "/initramfs.cpio.gz";
    c.vm.vcpus = o.vcpus;
    c.vm.memory_mib = o.memory_mib;
    c.root_filesystem = o.image_dir + "/rootfs.ext4";  // python3 for the guest's client
    c.boot_timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000));
    for (const char* host : {"127.0.0.1", "127.0.0.0/8"}) {  // the block lets "localhost" in
      EgressRule rule;
      rule.host = host;
      c.egress.policy.rules.push_back(rule);
    }
    SecretBinding key;
    key.name = "BENCH_KEY";
    key.hosts = {"localhost"};
    key.header = "Authorization";
    key.value = "Bearer forkvm-bench-secret";
    c.egress.policy.secrets.push_back(key);
    c.egress.upstream_ca_file = ca_file;
    auto box = Sandbox::create(c);
    BytesOriginConfig origin;
    origin.tls = public_ca->server_context("localhost");
    origin.unix_path = box->vsock_socket_path() + "_" + std::to_string(kReferencePort);
    BytesOrigin server(origin);
    std::string script = kGuestScript;
    script.replace(script.find("%REF%"), 5, std::to_string(kReferencePort));
    box->write_file("/tmp/egress_bench.py", script);
    box->write_file("/tmp/egress_bench_origin_ca.pem", public_ca->ca_pem());
    ExecOptions exec;
    exec.timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000) * 10);
    const auto t0 = Clock::now();
    const ExecResult r = box->exec(
        {"python3", "/tmp/egress_bench.py", std::to_string(server.tcp_port()),
         std::to_string(server.tls_port()), std::to_string(o.n), std::to_string(small_bytes),
         std::to_string(static_cast<uint64_t>(big_mib) << 20), std::to_string(rounds)},
        exec);
    if (r.exit_code != 0) {
      throw Error("the guest's script failed: " + printable_lines(r.stderr_data, 2000));
    }
    const auto j = nlohmann::json::parse(r.stdout_data);
    auto mib_s = [&](const std::vector<double>& ms) {
      std::vector<double> out;
      for (double v : ms) out.push_back(big_mib / (v / 1000.0));
      return summarize(out);
    };
    std::printf("egress: %u vCPU, %u MiB guest; measured in the guest by python3 (%.1f s)\n",
                o.vcpus, o.memory_mib,
                std::chrono::duration<double>(Clock::now() - t0).count());
    // One comparison: its reference row, the row under test, and their ratios.
    auto compare = [&](const char* title, const char* ref_name, const char* ref_key,
                       const char* test_name, const char* test_key, const char* goal) {
      std::printf("%s\n", title);
      const std::string ref = std::string("small_") + ref_key, test = std::string("small_") + test_key;
      const Summary sr = summarize(doubles(j[ref])), st = summarize(doubles(j[test]));
      std::printf("  GET of %u bytes, a new connection each, n=%u (ms); the first one apart: "
                  "%.1f against %.1f\n",
                  small_bytes, o.n, j["first"][test_key].get<double>(), j["first"][ref_key].get<double>());
      std::printf("%s\n", format_row(std::string("  ") + ref_name + " (reference)", sr).c_str());
      std::printf("%s\n", format_row(std::string("  ") + test_name, st).c_str());
      if (sr.p50 > 0 && sr.p99 > 0) {
        std::printf("    ratio p50 %.2fx  p99 %.2fx\n", st.p50 / sr.p50, st.p99 / sr.p99);
      }
      const Summary br = mib_s(doubles(j[std::string("big_") + ref_key]));
      const Summary bt = mib_s(doubles(j[std::string("big_") + test_key]));
      std::printf("  download of %u MiB x %u (MiB/s, higher is better):\n", big_mib, rounds);
      std::printf("%s\n", format_row(std::string("  ") + ref_name + " (reference)", br, "MiB/s").c_str());
      std::printf("%s\n", format_row(std::string("  ") + test_name, bt, "MiB/s").c_str());
      if (br.p50 > 0) std::printf("    ratio p50 %.2f%s\n", bt.p50 / br.p50, goal);
    };
    compare("HTTP: the egress proxy against a bare vsock stream of the same bytes",
            "bare vsock stream", "vsock", "through the egress proxy", "proxy", " (goal >= 0.8)");
    compare("HTTPS: interception with secret substitution against a CONNECT tunnel",
            "CONNECT tunnel", "tunnel", "intercepted + substituted", "intercept", "");
    box->shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench egress: %s\n", e.what());
    status = 1;
  }
  return status;
}

}  // namespace forkvm::bench
