// `forkvm-bench boot`: boot-to-agent-ready distributions for forkvm, with QEMU microvm on the
// same kernel and initramfs as the same-run reference.
#pragma once

#include <span>

namespace forkvm::bench {

/// Runs the boot benchmark with argv after "boot"; returns the exit code.
int boot_bench(std::span<char* const> args);

}  // namespace forkvm::bench
