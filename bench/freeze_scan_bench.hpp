// `forkvm-bench freeze-scan`: what finding a forked VM's written pages costs at a freeze
// (GuestMemory::private_extents, the /proc/self/pagemap scan of Vm::freeze), against RAM size
// and against the pages written, without KVM (issue 15 §4).
#pragma once

#include <span>

namespace forkvm::bench {

/// Usage lines of the mode, for forkvm-bench's help.
extern const char* const kFreezeScanUsage;

/// Runs the benchmark (arguments after "freeze-scan"). Returns the exit status.
int freeze_scan_bench(std::span<char* const> args);

}  // namespace forkvm::bench
