// forkvm-bench: latency benchmarks with distributions and a same-run reference.
#include <cstdio>
#include <cstring>
#include <span>

#include "bench/boot_bench.hpp"
#include "bench/disk_bench.hpp"
#include "bench/egress_bench.hpp"
#include "bench/exec_bench.hpp"
#include "bench/fork_bench.hpp"
#include "bench/fork_options.hpp"
#include "bench/fork_running.hpp"
#include "bench/fork_stress.hpp"
#include "bench/fork_stress_options.hpp"
#include "bench/freeze_scan_bench.hpp"
#include "bench/memory_bench.hpp"
#include "bench/memory_bench_parse.hpp"
#include "bench/net_bench.hpp"
#include "bench/restore_bench.hpp"
#include "bench/restore_options.hpp"
#include "bench/soak_bench.hpp"
#include "bench/soak_options.hpp"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "boot") == 0) {
    return forkvm::bench::boot_bench(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  }
  if (argc >= 2 && std::strcmp(argv[1], "disk") == 0) {
    return forkvm::bench::disk_bench(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  }
  if (argc >= 2 && std::strcmp(argv[1], "egress") == 0) {
    return forkvm::bench::egress_bench(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  }
  if (argc >= 2 && std::strcmp(argv[1], "net") == 0) {
    return forkvm::bench::net_bench(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  }
  if (argc >= 2 && std::strcmp(argv[1], "restore") == 0) {
    return forkvm::bench::restore_bench(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  }
  if (argc >= 2 && std::strcmp(argv[1], "memory") == 0) {
#ifdef FORKVM_BENCH_MEMWALK
    const char* memwalk = FORKVM_BENCH_MEMWALK;
#else
    const char* memwalk = "";
#endif
    return forkvm::bench::memory_bench(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)), memwalk);
  }
  if (argc >= 2 && std::strcmp(argv[1], "exec") == 0) {
    return forkvm::bench::exec_bench(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  }
  if (argc >= 2 && std::strcmp(argv[1], "fork") == 0) {
    return forkvm::bench::fork_bench(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  }
  if (argc >= 2 && std::strcmp(argv[1], "fork-running") == 0) {
    return forkvm::bench::fork_running_bench(
        std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  }
  if (argc >= 2 && std::strcmp(argv[1], "fork-stress") == 0) {
    return forkvm::bench::fork_stress(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  }
  if (argc >= 2 && std::strcmp(argv[1], "freeze-scan") == 0) {
    return forkvm::bench::freeze_scan_bench(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  }
  if (argc >= 2 && std::strcmp(argv[1], "soak") == 0) {
    return forkvm::bench::soak_bench(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  }
  std::fprintf(stderr,
               "usage: forkvm-bench boot [-n N] [--vcpus N] [--memory MiB] [--image-dir DIR] [--no-qemu]\n"
               "  boot-to-agent-ready for forkvm and, in the same run, QEMU -M microvm on the same\n"
               "  kernel and initramfs (needs a usable /dev/kvm: run it inside kvm-lab here).\n"
               "usage: forkvm-bench exec [-n N] [--vcpus N] [--memory MiB] [--file-mib M] [--file-rounds R]\n"
               "  round trips of exec([\"true\"]) and ping, and file throughput both ways, against a\n"
               "  bare vsock echo round trip in the same sandbox as the reference.\n"
               "usage: forkvm-bench egress [-n N] [--small-bytes B] [--big-mib M] [--rounds R]\n"
               "  the guest's HTTP GETs (latency) and a download (MiB/s) through the egress proxy\n"
               "  against the same bytes over a bare vsock stream, and HTTPS intercepted with a\n"
               "  secret substituted against a plain CONNECT tunnel, in the same sandbox and run.\n"
               "%s%s%s%s%s%s%s%s%s", forkvm::bench::kMemoryBenchUsage, forkvm::bench::kDiskBenchUsage, forkvm::bench::kRestoreBenchUsage, forkvm::bench::kNetBenchUsage, forkvm::bench::kForkBenchUsage,
               forkvm::bench::kForkRunningUsage, forkvm::bench::kForkStressUsage, forkvm::bench::kSoakUsage, forkvm::bench::kFreezeScanUsage);
  return 2;
}
