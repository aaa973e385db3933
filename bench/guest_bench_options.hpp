// The options the benchmarks that boot a guest beside QEMU share (`forkvm-bench boot`, `disk`):
// -n, --vcpus, --memory, --image-dir, --timeout, --no-qemu, plus each one's own.
#pragma once

#include <functional>
#include <span>
#include <stdexcept>
#include <string>

namespace forkvm::bench {

struct GuestBenchOptions {
  unsigned n = 10;           ///< -n: runs (or rounds) of each side
  unsigned vcpus = 1;        ///< --vcpus
  unsigned memory_mib = 256; ///< --memory: guest RAM
  double timeout_s = 120;    ///< --timeout: per run
  std::string image_dir;     ///< --image-dir: bzImage, initramfs.cpio.gz (and rootfs.ext4)
  bool qemu = true;          ///< false with --no-qemu
};

/// Parses `args` into `o` (whose fields hold the defaults). Options it does not know go to
/// `extra(option, next)`, which returns false for an unknown one; `next()` takes its value.
/// Throws std::runtime_error for a missing value, an unknown option or -n 0.
void parse_guest_bench_options(
    std::span<char* const> args, GuestBenchOptions& o,
    const std::function<bool(const std::string& option, const std::function<std::string()>& next)>& extra = {});

}  // namespace forkvm::bench
