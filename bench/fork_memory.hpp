// The memory parts of `forkvm-bench fork`: what each live child costs the host after its first
// exec (--live K), and how many pooled children can be alive at once (--max-live N), with the
// extrapolation to 1000 children of a 256 MiB template on a 24 GiB host, labelled as such.
#pragma once

#include <cstdint>
#include <string>

#include "bench/fork_report.hpp"
#include "bench/proc_status.hpp"
#include "forkvm/template.hpp"

namespace forkvm::bench {

/// Forks `k` children of `t` (whose pool holds `pool` VMs when full), runs exec(["true"]) in
/// each, and reports Sandbox::memory_usage() per child plus the process and system counter
/// deltas per child, read with the pool full before and after (so pooled VMs cancel out), and
/// the host file descriptors per child (/proc/self/fd, same readings).
/// `source` says which template it was ("pool of 2", "no pool").
ReportSection measure_live_memory(Template& t, size_t pool, unsigned k, const std::string& source);

/// Forks pooled children of `t` (each running exec(["true"])) until `n` are alive, a fork
/// fails, or the host's MemAvailable drops below a safety reserve; reports how many were
/// alive, what each costs (memory and file descriptors), and the extrapolation. `fd_limits`
/// are reported with the result.
ReportSection measure_max_live(Template& t, size_t pool, unsigned n, uint64_t template_bytes,
                               const FdLimits& fd_limits);

}  // namespace forkvm::bench
