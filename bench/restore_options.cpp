#include "bench/restore_options.hpp"

#include <stdexcept>

namespace forkvm::bench {

const char* const kRestoreBenchUsage =
    "usage: forkvm-bench restore [-n N] [--memory MiB] [--vcpus N] [--image-dir DIR]\n"
    "                            [--timeout S] [--no-qemu] [--json]\n"
    "  restore of a snapshot from its directory to the first answered exec([\"true\"])\n"
    "  (Sandbox::restore with and without the memory digest check, and the same restore split\n"
    "  into its phases through Template::open + fork), against QEMU -M microvm with KVM restoring the same-size guest from its own\n"
    "  migration file (-incoming) to the first answer of a serial-port responder, in the same\n"
    "  run; ratios forkvm/QEMU at p50 and p90. Needs /dev/kvm and qemu-system-x86_64.\n";

RestoreBenchOptions parse_restore_options(std::span<char* const> args, const std::string& image_dir) {
  RestoreBenchOptions o;
  o.image_dir = image_dir;
  o.timeout_s = 300;
  parse_guest_bench_options(args, o, [&o](const std::string& a, const std::function<std::string()>&) {
    if (a == "--json") o.json = true;
    else return false;
    return true;
  });
  if (o.vcpus == 0) throw std::runtime_error("--vcpus must be at least 1");
  if (o.memory_mib < 64 || o.memory_mib > 4096) throw std::runtime_error("--memory must be 64..4096 MiB");
  if (!(o.timeout_s > 0)) throw std::runtime_error("--timeout must be positive");
  return o;
}

}  // namespace forkvm::bench
