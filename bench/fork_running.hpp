// `forkvm-bench fork-running`: what forking a running sandbox costs (Sandbox::fork()).
//   - one sandbox is booted from the built-in image (or --image-dir); it is forked N times:
//     the freeze of the parent (pause, capture, copy the pages it wrote since its last freeze),
//     the child's latency to vCPUs ready by build phase, to agent ready, to its first answered
//     exec(["true"]), the parent's first exec after it, and the child's teardown (timed apart);
//   - how the parent's memory image grew over those freezes (VmImage::memory_layers() and
//     overlay_bytes() of a make_template() at the end) next to its RAM;
//   - a chain of forks of forks D deep: each level writes M MiB, then is forked; per level the
//     pages its freeze copied, the freeze and fork times, and the overlay of the level's image,
//     to show that a level copies only what was written, not the RAM.
#pragma once

#include <span>

namespace forkvm::bench {

/// Runs the benchmark with argv after "fork-running"; returns the exit code (2 usage, 1 failure).
int fork_running_bench(std::span<char* const> args);

}  // namespace forkvm::bench
