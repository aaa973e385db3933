// `forkvm-bench fork`'s fork-path part (issue 15 §3): every way of making a VM from an image
// (Template::fork, Sandbox::fork of a running sandbox, Sandbox::restore of a snapshot
// directory) with the shell pool warm and with it off, against the naive raw KVM sequence in
// the same rounds; and forks per second sustained with every pool empty.
#pragma once

#include <string>

#include "bench/fork_report.hpp"
#include "bench/raw_fork_reference.hpp"
#include "forkvm/template.hpp"

namespace forkvm::bench {

/// `n` rounds; each round forks (and execs in, and tears down) one child per path and shell
/// setting plus one raw reference, in an order rotated each round. `snapshot` is the image's
/// directory (for the restores, memory not re-verified); `nopool` a template of it without a
/// pool of its own.
ReportSection measure_fork_paths(const std::string& snapshot, unsigned n, Template& nopool,
                                 const RawForkReference& raw);

/// `count` children of `nopool` forked back to back (each until its agent answered; kept alive
/// until the end), with the shell pool off and then with it on (drained after its first
/// shells, refilling while the forks go on): children per second of each.
ReportSection measure_sustained(Template& nopool, unsigned count);

}  // namespace forkvm::bench
