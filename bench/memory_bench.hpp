// `forkvm-bench memory`: a guest memory-bound workload on each RAM backing of a booted VM
// (VmConfig::ram_backing), in the same run, with the huge pages each got, and a fork of the
// memfd-huge VM (issue 15 §6).
#pragma once

#include <span>
#include <string>

namespace forkvm::bench {

/// Runs the benchmark (arguments after "memory"; usage in memory_bench_parse.hpp). `memwalk`
/// is the default --memwalk: the static guest workload built with forkvm-bench, empty when this
/// build has none. Returns the exit status.
int memory_bench(std::span<char* const> args, const std::string& memwalk);

}  // namespace forkvm::bench
