// What `forkvm-bench soak` samples at each report point, the rule that judges the run (flat
// after warm-up, no failure) and the table and JSON it prints. No KVM: unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/stats.hpp"

namespace forkvm::bench {

/// This process's resources at one moment.
struct SoakCounters {
  size_t fds = 0;              ///< entries of /proc/self/fd (the reading one included)
  size_t layer_fds = 0;        ///< of those, memfds of memory-image layers ("forkvm-ram-layer")
  size_t threads = 0;          ///< entries of /proc/self/task
  size_t runtime_entries = 0;  ///< files and directories under the run's runtime dir, at any depth
  std::optional<uint64_t> rss, rss_anon, rss_file, rss_shmem;  ///< /proc/self/status, bytes
  uint64_t denied_calls = 0;   ///< system calls the thread filters refused since the process began
};

/// Reads the counters now; `runtime_dir` is the directory every sandbox's temp dir is made in.
/// Throws std::runtime_error when /proc or `runtime_dir` cannot be read.
SoakCounters read_soak_counters(const std::string& runtime_dir);

/// One report point: the counters after `cycle` cycles, the failures so far, and the latency of
/// the cycles since the previous point.
struct SoakPoint {
  unsigned cycle = 0;      ///< cycles done (0: before the first)
  SoakCounters counters;
  unsigned failures = 0;   ///< failed cycles and parent rounds so far
  Summary cycle_ms;        ///< template cycles of the window, fork to teardown
  Summary parent_ms;       ///< the parent's forks of the window, change to teardown
};

/// How far the image-layer memfds may be above the reference at the end: a long-lived parent's
/// image gains a layer at each freeze and merges them into one past MemoryImage::kMaxLayers, so
/// it holds 1 to kMaxLayers layers of its own, depending on where in that cycle it is.
size_t soak_layer_slack();

/// Why the run fails, one sentence each; empty when it passes. `points` starts with the point
/// before the first cycle. At the last point, the open fds other than image layers, the threads
/// and the runtime entries must be no higher than at the reference, and the image-layer memfds
/// no more than soak_layer_slack() higher. The reference is the first report after the warm-up
/// (points[1]) when there are at least two reports after the start, else the start. Any
/// failure, and any system call a thread filter refused after the start, fails the run.
std::vector<std::string> soak_verdict(const std::vector<SoakPoint>& points);

/// The table's column headings (two lines) and one row.
std::string soak_table_header();
std::string soak_table_row(const SoakPoint& p);

/// A point as JSON (sizes in bytes, latencies in ms).
nlohmann::json to_json(const SoakPoint& p);

}  // namespace forkvm::bench
