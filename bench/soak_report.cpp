#include "bench/soak_report.hpp"

#include <cstdio>

#include "bench/proc_status.hpp"
#include "forkvm/host_threads.hpp"
#include "memory/memory_image.hpp"

namespace forkvm::bench {
namespace {

double mib(const std::optional<uint64_t>& bytes) {
  return bytes ? static_cast<double>(*bytes) / (1 << 20) : -1.0;
}

nlohmann::json optional_json(const std::optional<uint64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json summary_json(const Summary& s) {
  return {{"n", s.n}, {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}, {"max", s.max}};
}

}  // namespace

SoakCounters read_soak_counters(const std::string& runtime_dir) {
  SoakCounters c;
  c.fds = count_entries("/proc/self/fd");
  c.layer_fds = count_fds_to("/memfd:forkvm-ram-layer");
  c.threads = count_entries("/proc/self/task");
  c.runtime_entries = count_tree_entries(runtime_dir);
  const MemoryCounters m = read_memory_counters();
  c.rss = m.vm_rss;
  c.rss_anon = m.rss_anon;
  c.rss_file = m.rss_file;
  c.rss_shmem = m.rss_shmem;
  c.denied_calls = thread_filter_stats().denied_calls;
  return c;
}

size_t soak_layer_slack() { return MemoryImage::kMaxLayers - 1; }

std::vector<std::string> soak_verdict(const std::vector<SoakPoint>& points) {
  std::vector<std::string> why;
  if (points.empty()) return {"nothing was measured"};
  const SoakPoint& last = points.back();
  if (last.failures > 0) why.push_back(std::to_string(last.failures) + " cycles or parent rounds failed");
  const SoakPoint& ref = points.size() >= 3 ? points[1] : points[0];
  auto rose = [&](const std::string& what, size_t before, size_t after, size_t slack) {
    if (after <= before + slack) return;
    why.push_back(what + " rose from " + std::to_string(before) + " after cycle " +
                  std::to_string(ref.cycle) + " to " + std::to_string(after) + " after cycle " +
                  std::to_string(last.cycle));
  };
  rose("open fds (image layers aside)", ref.counters.fds - ref.counters.layer_fds,
       last.counters.fds - last.counters.layer_fds, 0);
  rose("image-layer memfds (by more than " + std::to_string(soak_layer_slack()) + ")",
       ref.counters.layer_fds, last.counters.layer_fds, soak_layer_slack());
  rose("threads", ref.counters.threads, last.counters.threads, 0);
  if (last.counters.denied_calls > points.front().counters.denied_calls) {
    why.push_back("the thread filters refused " +
                  std::to_string(last.counters.denied_calls - points.front().counters.denied_calls) +
                  " system calls (forkvm's log on stderr names them)");
  }
  rose("runtime dir entries", ref.counters.runtime_entries, last.counters.runtime_entries, 0);
  return why;
}

std::string soak_table_header() {
  return " cycle   fds lyr thr  rss MiB  anon  file shmem  tmp fail deny |   cycle ms p50      p90      p99 |"
         " parent n      p50      p90\n"
         " ----- ----- --- --- -------- ----- ----- ----- ---- ---- ---- | -------------- -------- -------- |"
         " -------- -------- --------";
}

std::string soak_table_row(const SoakPoint& p) {
  const SoakCounters& c = p.counters;
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "%6u %5zu %3zu %3zu %8.1f %5.1f %5.1f %5.1f %4zu %4u %4llu | %14.1f %8.1f %8.1f | %8zu %8.1f %8.1f",
                p.cycle, c.fds, c.layer_fds, c.threads, mib(c.rss), mib(c.rss_anon), mib(c.rss_file),
                mib(c.rss_shmem), c.runtime_entries, p.failures,
                static_cast<unsigned long long>(c.denied_calls), p.cycle_ms.p50, p.cycle_ms.p90,
                p.cycle_ms.p99, p.parent_ms.n, p.parent_ms.p50, p.parent_ms.p90);
  return buf;
}

nlohmann::json to_json(const SoakPoint& p) {
  const SoakCounters& c = p.counters;
  return {{"cycle", p.cycle},
          {"fds", c.fds},
          {"layer_fds", c.layer_fds},
          {"threads", c.threads},
          {"runtime_entries", c.runtime_entries},
          {"rss", optional_json(c.rss)},
          {"rss_anon", optional_json(c.rss_anon)},
          {"rss_file", optional_json(c.rss_file)},
          {"rss_shmem", optional_json(c.rss_shmem)},
          {"failures", p.failures},
          {"denied_calls", c.denied_calls},
          {"cycle_ms", summary_json(p.cycle_ms)},
          {"parent_ms", summary_json(p.parent_ms)}};
}

}  // namespace forkvm::bench
