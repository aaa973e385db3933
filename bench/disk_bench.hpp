// `forkvm-bench disk`: throughput of a virtio-blk disk inside the guest (sequential 1 MiB and
// random 4 KiB reads and writes with O_DIRECT, run by python3 on the Debian root filesystem),
// for forkvm and, in the same run on the same kernel, root image and disk image, for QEMU's
// `-M microvm` with virtio-blk, rounds alternating between the two. Prints each side's
// distribution and the ratio of the medians (forkvm / QEMU; above 1 means forkvm is faster).
#pragma once

#include <span>

namespace forkvm::bench {

/// The usage text.
extern const char* const kDiskBenchUsage;

/// Runs the disk benchmark with argv after "disk"; returns the exit code.
int disk_bench(std::span<char* const> args);

}  // namespace forkvm::bench
