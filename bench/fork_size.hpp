// The "restore cost vs memory size" part of `forkvm-bench fork`: no-pool Template::fork()
// latency of several snapshots (e.g. one image with 256 MiB and with 1024 MiB of RAM), forked
// in the same rounds with the order rotated, and the ratio of each p50 to the first snapshot's.
// A fork maps the template copy-on-write and copies no RAM, so the latency should not grow
// with the RAM size; this measures whether it does.
#pragma once

#include <string>
#include <vector>

#include "bench/fork_report.hpp"

namespace forkvm::bench {

/// Opens a no-pool Template of each snapshot in `dirs` (the first is not re-hashed when
/// `first_verified`) and runs `n` rounds; in each, every template forks one child, runs
/// exec(["true"]) in it and tears it down. Returns the section "fork_vs_size".
ReportSection measure_size_scaling(const std::vector<std::string>& dirs, unsigned n,
                                   bool first_verified);

}  // namespace forkvm::bench
