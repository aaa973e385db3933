#include "bench/disk_bench.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/guest_bench_options.hpp"
#include "bench/guest_script.hpp"
#include "bench/qemu_reference.hpp"
#include "bench/scratch_dir.hpp"
#include "bench/stats.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/vm.hpp"

namespace forkvm::bench {
namespace {

struct Options : GuestBenchOptions {
  unsigned disk_mib = 64;  ///< --mib: size of the disk under test
  unsigned random_ops = 2000;  ///< --random-ops: 4 KiB operations per random row
};

/// The four figures of one run, in the order the guest prints them.
constexpr std::array<const char*, 4> kMetrics = {"sequential read (MB/s)", "sequential write (MB/s)",
                                                 "random 4 KiB read (IOPS)",
                                                 "random 4 KiB write (IOPS)"};
constexpr const char* kMarker = "FORKVM-DISK-BENCH ";

/// The workload, run by python3 in the guest from the "script" disk: finds the disk whose
/// serial is "bench", then times sequential 1 MiB and random 4 KiB O_DIRECT I/O over it.
std::string workload(unsigned random_ops) {
  return "import os, mmap, time, random\n"
         "def find(serial):\n"
         "    for d in os.listdir(\"/sys/block\"):\n"
         "        try:\n"
         "            if open(\"/sys/block/%s/serial\" % d).read().strip() == serial: return \"/dev/\" + d\n"
         "        except OSError: pass\n"
         "fd = os.open(find(\"bench\"), os.O_RDWR | os.O_DIRECT)\n"
         "size = os.lseek(fd, 0, 2)\n"
         "big, small = mmap.mmap(-1, 1 << 20), mmap.mmap(-1, 4096)\n"
         "def seq(write):\n"
         "    t = time.perf_counter()\n"
         "    for off in range(0, size, 1 << 20): (os.pwritev if write else os.preadv)(fd, [big], off)\n"
         "    if write: os.fsync(fd)\n"
         "    return size / (time.perf_counter() - t) / 1e6\n"
         "rng = random.Random(7)\n"
         "def rnd(write, n=" + std::to_string(random_ops) + "):\n"
         "    t = time.perf_counter()\n"
         "    for _ in range(n): (os.pwritev if write else os.preadv)(fd, [small], rng.randrange(size // 4096) * 4096)\n"
         "    if write: os.fsync(fd)\n"
         "    return n / (time.perf_counter() - t)\n"
         "print(\"" + std::string(kMarker) + "%.2f %.2f %.1f %.1f\" % (seq(0), seq(1), rnd(0), rnd(1)), flush=True)\n";
}

/// The four figures of a result line, or nullopt.
std::optional<std::array<double, 4>> parse_result(const std::optional<std::string>& line) {
  if (!line) return std::nullopt;
  std::istringstream in(*line);
  std::array<double, 4> r{};
  for (double& v : r) {
    if (!(in >> v)) return std::nullopt;
  }
  return r;
}

std::optional<std::array<double, 4>> run_forkvm(const ScriptGuest& g, const std::string& disk_path,
                                                std::string* why) {
  VmConfig c;
  DiskConfig disk;
  disk.path = disk_path;
  disk.id = "bench";
  c.disks = {disk};
  auto r = parse_result(run_in_forkvm(g, c, why));
  if (!r && why->empty()) *why = "a result line that does not parse";
  return r;
}

std::optional<std::array<double, 4>> run_qemu_once(const ScriptGuest& g, const std::string& disk_path,
                                                    std::string* why) {
  auto r = parse_result(run_in_qemu(g, {}, {"-drive", "id=bench,file=" + disk_path + ",format=raw,if=none",
                                            "-device", "virtio-blk-device,drive=bench,serial=bench"},
                                    why));
  if (!r && why->empty()) *why = "a result line that does not parse";
  return r;
}

Options parse(std::span<char* const> args) {
  Options o;
  o.n = 3;  // rounds, each one forkvm run and one QEMU run
  o.memory_mib = 512;
  o.timeout_s = 600;
  o.image_dir = FORKVM_BENCH_IMAGE_DIR;
  parse_guest_bench_options(args, o, [&o](const std::string& a, const std::function<std::string()>& next) {
    if (a == "--mib") o.disk_mib = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--random-ops") o.random_ops = static_cast<unsigned>(std::stoul(next()));
    else return false;
    return true;
  });
  if (o.disk_mib == 0 || o.random_ops == 0) throw std::runtime_error("--mib and --random-ops must be at least 1");
  return o;
}

/// A disk image of `mib` MiB of pseudo-random bytes (so reads are not of holes).
void write_disk(const std::string& path, unsigned mib) {
  std::ofstream out(path, std::ios::binary);
  std::mt19937_64 rng(42);
  std::vector<uint64_t> chunk((1u << 20) / 8);
  for (unsigned m = 0; m < mib; ++m) {
    for (auto& w : chunk) w = rng();
    out.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(chunk.size() * 8));
  }
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

const char* const kDiskBenchUsage =
    "usage: forkvm-bench disk [-n ROUNDS] [--mib M] [--random-ops K] [--vcpus N] [--memory MiB]\n"
    "                         [--image-dir DIR] [--timeout S] [--no-qemu]\n"
    "  virtio-blk throughput inside the guest (python3 on the Debian root filesystem: 1 MiB\n"
    "  sequential and 4 KiB random O_DIRECT reads and writes over an M MiB disk, default 64),\n"
    "  forkvm and QEMU -M microvm alternating on the same images; ratios forkvm / QEMU.\n";

int disk_bench(std::span<char* const> args) {
  Options o;
  try {
    o = parse(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench disk: %s\n%s", e.what(), kDiskBenchUsage);
    return 2;
  }
  std::string why;
  if (o.qemu && !qemu_reference_available(QemuBoot{}, &why)) {
    std::fprintf(stderr, "forkvm-bench disk: the QEMU reference cannot run: %s (--no-qemu skips it)\n",
                 why.c_str());
    return 3;
  }
  const auto scratch = scratch_dir("disk");
  if (!scratch) return 3;
  const std::filesystem::path dir = scratch->path();
  const std::string disk_path = (dir / "disk.img").string();
  ScriptGuest g;
  g.image_dir = o.image_dir;
  g.rootfs = o.image_dir + "/rootfs.ext4";
  g.script_disk = (dir / "script.py").string();
  g.marker = kMarker;
  g.vcpus = o.vcpus;
  g.memory_mib = o.memory_mib;
  g.timeout_s = o.timeout_s;
  int status = 0;
  try {
    write_disk(disk_path, o.disk_mib);
    write_script_disk(g.script_disk, workload(o.random_ops));
    std::vector<std::vector<double>> mine(4), theirs(4);
    std::printf("forkvm-bench disk: %u round(s), a %u MiB disk, %u random ops, %u MiB guests\n",
                o.n, o.disk_mib, o.random_ops, o.memory_mib);
    for (unsigned round = 0; round < o.n; ++round) {
      why.clear();
      const auto a = run_forkvm(g, disk_path, &why);
      if (!a) throw std::runtime_error("forkvm run failed: " + why);
      for (size_t k = 0; k < 4; ++k) mine[k].push_back((*a)[k]);
      std::printf("  round %u forkvm: %.1f MB/s, %.1f MB/s, %.0f IOPS, %.0f IOPS\n", round + 1,
                  (*a)[0], (*a)[1], (*a)[2], (*a)[3]);
      if (!o.qemu) continue;
      why.clear();
      const auto b = run_qemu_once(g, disk_path, &why);
      if (!b) throw std::runtime_error("QEMU run failed: " + why);
      for (size_t k = 0; k < 4; ++k) theirs[k].push_back((*b)[k]);
      std::printf("  round %u QEMU:   %.1f MB/s, %.1f MB/s, %.0f IOPS, %.0f IOPS\n", round + 1,
                  (*b)[0], (*b)[1], (*b)[2], (*b)[3]);
      std::fflush(stdout);
    }
    for (size_t k = 0; k < 4; ++k) {
      const std::string unit = k < 2 ? "MB/s" : "IOPS";
      std::printf("%s\n", format_row(std::string("forkvm ") + kMetrics[k], summarize(mine[k]), unit).c_str());
      if (!o.qemu) continue;
      const Summary q = summarize(theirs[k]);
      std::printf("%s\n", format_row(std::string("QEMU   ") + kMetrics[k], q, unit).c_str());
      std::printf("  ratio forkvm / QEMU (p50): %.2fx\n", summarize(mine[k]).p50 / q.p50);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench disk: %s\n", e.what());
    status = 1;
  }
  return status;
}

}  // namespace forkvm::bench
