// `forkvm-bench restore` (issue 15 §7): restore of a snapshot from its directory to the first
// answered exec, against QEMU restoring the same-size guest from its own migration file in the
// same run (bench/qemu_restore.hpp), with ratios forkvm/QEMU.
//
// Made once per run: a snapshot of a booted sandbox of the built-in image (after one
// exec(["true"]), so that both guests have answered one request before their capture) in a
// scratch directory, and QEMU's migration file of the same kernel, initramfs, vCPUs and RAM.
// Each round then measures, interleaved so that drift in the lab's load hits all alike:
//   - forkvm: Sandbox::restore(dir) call -> exec(["true"]) answered, split into the restore
//     call and the first exec, plus a second exec on the same sandbox (the warmed reference);
//   - the same restore split into its phases, through Template::open(dir) (open and verify the
//     snapshot) and Template::fork() without a pool (the Vm build phases, agent connect,
//     identity: Sandbox::fork_timings()), then the first exec (Sandbox::restore records none
//     of its phases, so this path, which runs the same steps, shows them);
//   - QEMU: process spawn -> the restored guest's answer (qemu_restore.hpp).
// Sandboxes are torn down, and their teardown waited for, between measurements.
#pragma once

#include <span>

namespace forkvm::bench {

/// Runs the restore benchmark with argv after "restore"; returns the exit code (2 usage, 3 no
/// QEMU reference or scratch directory, 1 a failed measurement).
int restore_bench(std::span<char* const> args);

}  // namespace forkvm::bench
