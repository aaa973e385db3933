#include "bench/net_bench.hpp"


#include <array>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bytes_origin.hpp"
#include "bench/guest_bench_options.hpp"
#include "bench/guest_script.hpp"
#include "bench/qemu_reference.hpp"
#include "bench/scratch_dir.hpp"
#include "bench/stats.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/vm.hpp"

namespace forkvm::bench {
namespace {

constexpr const char* kMarker = "FORKVM-NET-BENCH ";
constexpr const char* kTap = "fvtap0";  // forkvm-netns's TAP, at 172.16.0.1/30
constexpr uint16_t kPort = 8080;

struct Options : GuestBenchOptions {
  unsigned small = 50;         ///< --small: small GETs per boot
  unsigned small_bytes = 1024; ///< --small-bytes
  unsigned big_mib = 64;       ///< --big-mib: size of each download
  unsigned downloads = 2;      ///< --downloads: large downloads per boot
  std::string name = "fvbench";  ///< --netns-name: forkvm-netns NAME
};

/// The guest's side: waits (bounded) until the origin answers, then times `small` GETs and
/// `downloads` large ones, each a new connection, reading exactly Content-Length bytes.
std::string workload(const Options& o) {
  return "import json, socket, time\n"
         "def get(size):\n"
         "    t = time.perf_counter()\n"
         "    s = socket.create_connection(('172.16.0.1', " + std::to_string(kPort) + "), timeout=60)\n"
         "    s.sendall(b'GET /bytes?n=%d HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' % size)\n"
         "    data = bytearray()\n"
         "    while b'\\r\\n\\r\\n' not in data:\n"
         "        chunk = s.recv(1 << 16)\n"
         "        assert chunk, 'no header'\n"
         "        data += chunk\n"
         "    got = len(data) - data.index(b'\\r\\n\\r\\n') - 4\n"
         "    while got < size:\n"
         "        chunk = s.recv(1 << 20)\n"
         "        assert chunk, 'short body %d of %d' % (got, size)\n"
         "        got += len(chunk)\n"
         "    assert got == size, got\n"
         "    s.close()\n"
         "    return (time.perf_counter() - t) * 1000\n"
         "for attempt in range(120):\n"
         "    try:\n"
         "        get(1)\n"
         "        break\n"
         "    except OSError:\n"
         "        time.sleep(0.25)\n"
         "out = {'small': [get(" + std::to_string(o.small_bytes) + ") for _ in range(" +
         std::to_string(o.small) + ")],\n"
         "       'big': [get(" + std::to_string(static_cast<uint64_t>(o.big_mib) << 20) +
         ") for _ in range(" + std::to_string(o.downloads) + ")]}\n"
         "print('" + std::string(kMarker) + "' + json.dumps(out), flush=True)\n";
}

/// The namespace from tools/net/forkvm-netns, made for the run and deleted after it.
class Namespace {
 public:
  explicit Namespace(const std::string& name) : name_(name) {
    std::system((tool() + " down " + name_ + " >/dev/null 2>&1").c_str());  // a stale one
    if (std::system((tool() + " up " + name_ + " >/dev/null").c_str()) != 0) {
      throw std::runtime_error(tool() + " up " + name_ + " failed (needs root and iproute2)");
    }
    path_ = "/run/netns/forkvm-" + name_;  // forkvm-netns path NAME
  }
  ~Namespace() { std::system((tool() + " down " + name_ + " >/dev/null 2>&1").c_str()); }
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;
  const std::string& path() const { return path_; }
  std::string ip_name() const { return "forkvm-" + name_; }

 private:
  static std::string tool() { return FORKVM_NETNS_TOOL; }
  std::string name_, path_;
};

/// One side's samples over every round.
struct Side {
  const char* label;
  std::vector<double> small_ms, big_mib_s;
};

void add_result(Side& side, const std::string& line, unsigned big_mib) {
  const auto j = nlohmann::json::parse(line);
  for (double v : j.at("small").get<std::vector<double>>()) side.small_ms.push_back(v);
  for (double v : j.at("big").get<std::vector<double>>()) side.big_mib_s.push_back(big_mib / (v / 1000.0));
}

Options parse(std::span<char* const> args) {
  Options o;
  o.n = 3;  // rounds: one boot of each side per round
  o.memory_mib = 512;
  o.timeout_s = 600;
  o.image_dir = FORKVM_BENCH_IMAGE_DIR;
  parse_guest_bench_options(args, o, [&o](const std::string& a, const std::function<std::string()>& next) {
    if (a == "--small") o.small = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--small-bytes") o.small_bytes = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--big-mib") o.big_mib = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--downloads") o.downloads = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--netns-name") o.name = next();
    else return false;
    return true;
  });
  if (o.small == 0 || o.downloads == 0 || o.big_mib == 0 || o.big_mib > 1024) {
    throw std::runtime_error("--small and --downloads must be at least 1, --big-mib 1..1024");
  }
  return o;
}

}  // namespace

const char* const kNetBenchUsage =
    "usage: forkvm-bench net [-n ROUNDS] [--small K] [--small-bytes B] [--big-mib M]\n"
    "                        [--downloads D] [--netns-name NAME] [--vcpus N] [--memory MiB]\n"
    "                        [--image-dir DIR] [--timeout S] [--no-qemu]\n"
    "  virtio-net in the guest (python3): K GETs of B bytes (ms) and D downloads of M MiB\n"
    "  (MiB/s) from a server behind a TAP in namespace forkvm-NAME (tools/net/forkvm-netns),\n"
    "  forkvm against QEMU -M microvm virtio-net-device (vhost off) without and with its\n"
    "  offloads, booted in turn each round; ratios forkvm / QEMU. Needs root.\n";

int net_bench(std::span<char* const> args) {
  Options o;
  try {
    o = parse(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench net: %s\n%s", e.what(), kNetBenchUsage);
    return 2;
  }
  std::string why;
  if (o.qemu && !qemu_reference_available(QemuBoot{}, &why)) {
    std::fprintf(stderr, "forkvm-bench net: the QEMU reference cannot run: %s (--no-qemu skips it)\n",
                 why.c_str());
    return 3;
  }
  const auto scratch = scratch_dir("net");
  if (!scratch) return 3;
  const std::string dir = scratch->path();
  int status = 0;
  try {
    Namespace ns(o.name);
    BytesOriginConfig origin_config;
    origin_config.tcp_address = "172.16.0.1";
    origin_config.tcp_port = kPort;
    origin_config.netns = ns.path();
    BytesOrigin origin(origin_config);
    ScriptGuest g;
    g.image_dir = o.image_dir;
    g.rootfs = o.image_dir + "/rootfs.ext4";
    g.script_disk = dir + "/script.py";
    g.setup = "ip addr add 172.16.0.2/30 dev eth0 && ip link set eth0 up";
    g.marker = kMarker;
    g.vcpus = o.vcpus;
    g.memory_mib = o.memory_mib;
    g.timeout_s = o.timeout_s;
    write_script_disk(g.script_disk, workload(o));
    // QEMU in the namespace opens the same TAP by name; userspace virtio-net like forkvm's.
    const std::vector<std::string> in_ns = {"ip", "netns", "exec", ns.ip_name()};
    const std::string netdev = std::string("tap,id=n0,ifname=") + kTap + ",script=no,downscript=no,vhost=off";
    const std::string no_offloads =
        "virtio-net-device,netdev=n0,csum=off,guest_csum=off,gso=off,guest_tso4=off,"
        "guest_tso6=off,guest_ecn=off,guest_ufo=off,host_tso4=off,host_tso6=off,host_ecn=off,"
        "host_ufo=off,mrg_rxbuf=off";
    std::array<Side, 3> sides = {Side{"forkvm virtio-net (its offloads)", {}, {}},
                                 Side{"QEMU virtio-net, offloads off", {}, {}},
                                 Side{"QEMU virtio-net, its default offloads", {}, {}}};
    std::printf("forkvm-bench net: %u round(s); per boot %u GETs of %u bytes and %u downloads of "
                "%u MiB; %u MiB guests\n",
                o.n, o.small, o.small_bytes, o.downloads, o.big_mib, o.memory_mib);
    for (unsigned round = 0; round < o.n; ++round) {
      for (size_t k = 0; k < sides.size(); ++k) {
        if (k > 0 && !o.qemu) break;
        why.clear();
        std::optional<std::string> line;
        if (k == 0) {
          VmConfig c;
          NetConfig net;
          net.tap = kTap;
          net.netns = ns.path();
          c.net = net;
          line = run_in_forkvm(g, c, &why);
        } else {
          line = run_in_qemu(g, in_ns, {"-netdev", netdev, "-device",
                                        k == 1 ? no_offloads : "virtio-net-device,netdev=n0"},
                             &why);
        }
        if (!line) throw std::runtime_error(std::string(sides[k].label) + ": " + why);
        add_result(sides[k], *line, o.big_mib);
        std::printf("  round %u %s: GET p50 %.2f ms, download %.1f MiB/s\n", round + 1,
                    sides[k].label, summarize(sides[k].small_ms).p50,
                    sides[k].big_mib_s.back());
        std::fflush(stdout);
      }
    }
    std::printf("GET of %u bytes, a new connection each (ms):\n", o.small_bytes);
    for (size_t k = 0; k < (o.qemu ? sides.size() : 1); ++k) {
      std::printf("%s\n", format_row(std::string("  ") + sides[k].label, summarize(sides[k].small_ms)).c_str());
    }
    std::printf("download of %u MiB (MiB/s, higher is better):\n", o.big_mib);
    for (size_t k = 0; k < (o.qemu ? sides.size() : 1); ++k) {
      std::printf("%s\n", format_row(std::string("  ") + sides[k].label, summarize(sides[k].big_mib_s), "MiB/s").c_str());
    }
    if (o.qemu) {
      const Summary mine_small = summarize(sides[0].small_ms), mine_big = summarize(sides[0].big_mib_s);
      for (size_t k = 1; k < sides.size(); ++k) {
        std::printf("  forkvm / %s: GET p50 latency %.2fx (below 1 is faster), download p50 %.2fx "
                    "(above 1 is faster)\n",
                    sides[k].label, mine_small.p50 / summarize(sides[k].small_ms).p50,
                    mine_big.p50 / summarize(sides[k].big_mib_s).p50);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench net: %s\n", e.what());
    status = 1;
  }
  return status;
}

}  // namespace forkvm::bench
