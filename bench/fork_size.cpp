#include "bench/fork_size.hpp"

#include <cstdio>
#include <memory>

#include "bench/fork_common.hpp"
#include "forkvm/template.hpp"

namespace forkvm::bench {
namespace {

struct SizedTemplate {
  std::string dir;
  std::shared_ptr<Template> tmpl;
  uint64_t memory_mib = 0;
  ForkSeries series;
};

void add_ratio_value(ReportSection& s, const std::string& key, const std::string& label,
                     const std::vector<double>& big, const std::vector<double>& small) {
  const Summary b = summarize(big), a = summarize(small);
  if (a.n == 0 || b.n == 0 || a.p50 <= 0) return;
  s.values.push_back({key, label, "x", b.p50 / a.p50, true});
}

}  // namespace

ReportSection measure_size_scaling(const std::vector<std::string>& dirs, unsigned n,
                                   bool first_verified) {
  std::vector<SizedTemplate> ts;
  for (size_t i = 0; i < dirs.size(); ++i) {
    TemplateOptions o;
    o.pool_size = 0;
    o.verify_memory = !(i == 0 && first_verified);
    SizedTemplate t;
    t.dir = dirs[i];
    t.tmpl = Template::open(dirs[i], o);
    t.memory_mib = t.tmpl->image()->memory_mib();
    ts.push_back(std::move(t));
  }
  for (unsigned r = 0; r < n; ++r) {
    // Rotate the order each round so that no snapshot always goes first.
    for (size_t j = 0; j < ts.size(); ++j) {
      SizedTemplate& t = ts[(r + j) % ts.size()];
      ForkedChild c = fork_and_exec_retry([&t] { return t.tmpl->fork(); }, t.series.failures);
      t.series.add(c);
      double reaped = 0;  // waited for, so the reaper never overlaps the next fork
      t.series.teardown.push_back(destroy_timed(std::move(c.sandbox), &reaped));
      t.series.teardown_reaped.push_back(reaped);
    }
    std::fprintf(stderr, "  size round %u/%u:", r + 1, n);
    for (const auto& t : ts) {
      std::fprintf(stderr, "  %llu MiB %.2f", static_cast<unsigned long long>(t.memory_mib),
                   t.series.to_vcpus_ready.back());
    }
    std::fprintf(stderr, " ms\n");
  }

  ReportSection s;
  s.key = "fork_vs_size";
  s.title = "fork latency vs template RAM size (no pool; ms)";
  s.notes.push_back("each round forks one child of every snapshot (order rotated), runs "
                    "exec([\"true\"]) in it and tears it down; the ratios are p50(this) / "
                    "p50(" + std::to_string(ts[0].memory_mib) + " MiB)");
  for (size_t i = 0; i < ts.size(); ++i) {
    const SizedTemplate& t = ts[i];
    const std::string mib = std::to_string(t.memory_mib);
    const std::string key = "mib" + mib + (i == 0 ? "" : "_" + std::to_string(i));
    s.notes.push_back(mib + " MiB: " + t.dir + " (" + std::to_string(t.tmpl->image()->vcpus()) +
                      " vCPU)");
    const std::string f = t.series.failures.note(n + t.series.failures.count());
    if (!f.empty()) s.notes.push_back(mib + " MiB: " + f);
    add_fork_rows(s, key, mib + " MiB: fork() -> vCPUs ready", t.series);
    s.rows.push_back({key + "_to_ready", "  " + mib + " MiB: fork() -> agent ready", "ms",
                      summarize(t.series.to_ready)});
    s.rows.push_back({key + "_to_exec", "  " + mib + " MiB: fork() -> exec answered", "ms",
                      summarize(t.series.to_exec)});
    s.rows.push_back({key + "_teardown", "  " + mib + " MiB: teardown (until reaped)", "ms",
                      summarize(t.series.teardown_reaped)});
  }
  const SizedTemplate& a = ts[0];
  for (size_t i = 1; i < ts.size(); ++i) {
    const SizedTemplate& b = ts[i];
    const std::string what = std::to_string(b.memory_mib) + " MiB / " +
                             std::to_string(a.memory_mib) + " MiB";
    const std::string k = "ratio_" + std::to_string(i) + "_";
    s.values.push_back({k + "ram", "RAM ratio " + what, "x",
                        static_cast<double>(b.memory_mib) / static_cast<double>(a.memory_mib), true});
    add_ratio_value(s, k + "to_vcpus_ready_p50", "ratio " + what + " p50 fork() -> vCPUs ready",
                    b.series.to_vcpus_ready, a.series.to_vcpus_ready);
    add_ratio_value(s, k + "memory_p50", "ratio " + what + " p50 memory phase", b.series.memory,
                    a.series.memory);
    add_ratio_value(s, k + "to_ready_p50", "ratio " + what + " p50 fork() -> agent ready",
                    b.series.to_ready, a.series.to_ready);
    add_ratio_value(s, k + "to_exec_p50", "ratio " + what + " p50 fork() -> exec answered",
                    b.series.to_exec, a.series.to_exec);
    add_ratio_value(s, k + "teardown_p50", "ratio " + what + " p50 teardown",
                    b.series.teardown_reaped, a.series.teardown_reaped);
  }
  return s;
}

}  // namespace forkvm::bench
