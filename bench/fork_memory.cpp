#include "bench/fork_memory.hpp"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <exception>
#include <vector>

#include "bench/anon_map.hpp"
#include "bench/fork_common.hpp"
#include "bench/memory_math.hpp"
#include "bench/proc_status.hpp"

namespace forkvm::bench {
namespace {

constexpr double kKiB = 1024.0;
constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGiB = kMiB * 1024.0;
/// --max-live stops before the host's MemAvailable falls below this, rather than let the OOM
/// killer end the benchmark (and, in kvm-lab, L1) without a result.
constexpr uint64_t kHostReserve = 192ull << 20;
constexpr std::chrono::seconds kPoolWait{180};

std::optional<double> scaled(const std::optional<double>& v, double unit) {
  if (!v) return std::nullopt;
  return *v / unit;
}

void add_per_child_values(ReportSection& s, const PerChildMemory& m) {
  s.values.push_back(optional_value("rss_anon_mib", "per child: RssAnon delta (private pages)",
                                    "MiB", scaled(m.rss_anon, kMiB)));
  s.values.push_back(optional_value("vm_pte_kib", "per child: VmPTE delta (process page tables)",
                                    "KiB", scaled(m.vm_pte, kKiB)));
  s.values.push_back(optional_value("sec_page_tables_kib",
                                    "per child: SecPageTables delta (KVM NPT/EPT, system-wide)",
                                    "KiB", scaled(m.sec_page_tables, kKiB)));
  s.values.push_back(optional_value("rss_file_mib",
                                    "per child: RssFile delta (template pages mapped; shared)",
                                    "MiB", scaled(m.rss_file, kMiB)));
  s.values.push_back(optional_value("rss_shmem_mib",
                                    "per child: RssShmem delta (tmpfs/memfd pages mapped; shared)",
                                    "MiB", scaled(m.rss_shmem, kMiB)));
  s.values.push_back(optional_value("mem_available_drop_mib",
                                    "per child: MemAvailable drop (system-wide, all kernel memory)",
                                    "MiB", scaled(m.mem_available_drop, kMiB)));
  s.values.push_back(optional_value("unshared_mib",
                                    "per child: unshared cost (RssAnon + VmPTE + SecPageTables)",
                                    "MiB", scaled(unshared_cost(m), kMiB)));
}

/// What of a child's RssAnon is where (bench/anon_map.hpp): copies of guest RAM, and the host
/// side (thread stacks, malloc) that a child adds beside them.
void add_anon_values(ReportSection& s, const AnonBreakdown& b, const AnonBreakdown& a,
                     unsigned children) {
  const auto per = [children](uint64_t before, uint64_t after) {
    return (static_cast<double>(after) - static_cast<double>(before)) / children / kKiB;
  };
  s.values.push_back({"anon_guest_ram_kib", "per child: of RssAnon, in private file mappings (guest RAM copies)",
                      "KiB", per(b.file_private, a.file_private), true});
  s.values.push_back({"anon_stacks_kib", "per child: of RssAnon, in thread stacks", "KiB",
                      per(b.stacks, a.stacks), true});
  s.values.push_back({"anon_heap_kib", "per child: of RssAnon, in malloc's [heap]", "KiB",
                      per(b.heap, a.heap), true});
  s.values.push_back({"anon_other_kib",
                      "per child: of RssAnon, in other anonymous mappings (large blocks, arenas)",
                      "KiB", per(b.other, a.other), true});
  s.values.push_back({"mappings_per_child", "per child: host mappings (VMAs)", "",
                      (static_cast<double>(a.mappings) - static_cast<double>(b.mappings)) / children,
                      true});
}

/// Distributions of Sandbox::memory_usage() over `kids`.
void add_usage_rows(ReportSection& s, const std::vector<std::unique_ptr<Sandbox>>& kids) {
  std::vector<double> priv, shared;
  for (const auto& k : kids) {
    const VmMemoryUsage u = k->memory_usage();
    priv.push_back(static_cast<double>(u.private_bytes) / kMiB);
    shared.push_back(static_cast<double>(u.shared_bytes) / kMiB);
  }
  s.rows.push_back({"private_mib", "Sandbox::memory_usage private", "MiB", summarize(priv)});
  s.rows.push_back({"shared_mib", "Sandbox::memory_usage shared", "MiB", summarize(shared)});
}

std::string pool_note(bool before_full, bool after_full, size_t pool) {
  if (pool == 0) return "no pool: nothing prepared ahead of time is in the deltas";
  if (before_full && after_full) {
    return "the pool held " + std::to_string(pool) + " VMs at both readings, so they cancel out";
  }
  return "the pool was NOT full at " + std::string(before_full ? "the second" : "the first") +
         " reading: the deltas include the difference in pooled VMs";
}

/// A count of this process's (e.g. "fds": entries of /proc/self/fd) before and after the
/// children were made, and per child.
void add_count_values(ReportSection& s, const std::string& key, const std::string& what,
                      size_t before, size_t after, unsigned children) {
  s.values.push_back({key + "_before", "host " + what + " before the children", "",
                      static_cast<double>(before), true});
  s.values.push_back({key + "_after", "host " + what + " with them alive", "",
                      static_cast<double>(after), true});
  s.values.push_back({key + "_per_child", "per child: host " + what, key,
                      (static_cast<double>(after) - static_cast<double>(before)) / children, true});
}

/// With every child alive at once, asks each for one more exec: they all still answer, and how
/// fast with that many alive. A child that fails is counted (and its error printed), not fatal.
void add_all_answer_rows(ReportSection& s, const std::vector<std::unique_ptr<Sandbox>>& kids) {
  std::vector<double> ms;
  size_t failed = 0;
  for (size_t i = 0; i < kids.size(); ++i) {
    const auto t0 = Clock::now();
    try {
      const ExecResult r = kids[i]->exec(first_exec_argv());
      if (!r.ok()) throw Error("did not exit 0");
      ms.push_back(ms_since(t0));
    } catch (const std::exception& e) {
      ++failed;
      std::fprintf(stderr, "  child %zu did not answer with all alive: %s\n", i, e.what());
    }
    if ((i + 1) % 100 == 0) std::fprintf(stderr, "  %zu of %zu children asked again\n", i + 1, kids.size());
  }
  s.values.push_back({"answered_all_alive", "children answering an exec with all alive", "",
                      static_cast<double>(ms.size()), true});
  s.values.push_back({"failed_all_alive", "children NOT answering with all alive", "",
                      static_cast<double>(failed), true});
  s.rows.push_back({"exec_all_alive_ms", first_exec_text() + " with all alive", "ms", summarize(ms)});
}

/// This process's CPU time (user + system, every thread; a vCPU's guest time counts as user).
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// With every child alive and idle (no request in flight), the CPU this process burns over
/// `window`: what each idle child costs the host in CPU, guest timers and KVM halt polling
/// included, which bounds how many can stay alive on a given number of cores.
void add_idle_cpu_values(ReportSection& s, unsigned children, std::chrono::seconds window) {
  std::fprintf(stderr, "  measuring idle CPU over %llds\n", static_cast<long long>(window.count()));
  const double cpu0 = process_cpu_seconds();
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(window);
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = process_cpu_seconds() - cpu0;
  s.values.push_back({"idle_cpu_percent", "all children idle: this process's CPU (% of one core)",
                      "%", 100.0 * cpu / wall, true});
  s.values.push_back({"idle_cpu_percent_per_child", "per idle child: CPU (% of one core)", "%",
                      100.0 * cpu / wall / children, true});
}

void destroy_all(std::vector<std::unique_ptr<Sandbox>>& kids) {
  for (auto& k : kids) {
    try {
      k->shutdown();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "forkvm-bench: shutting a child down: %s\n", e.what());
    }
    k.reset();
  }
  kids.clear();
  Sandbox::wait_for_teardowns();  // their memory and descriptors are gone before the next reading
}

}  // namespace

ReportSection measure_live_memory(Template& t, size_t pool, unsigned k, const std::string& source) {
  ReportSection s;
  s.key = "memory";
  s.title = "memory per sandbox after its first " + first_exec_text() + ": " + std::to_string(k) +
            " children alive (" + source + ")";
  const bool full_before = wait_pool_full(t, pool, kPoolWait);
  // Children gone before (earlier sections', the pool's warm-up child) are reaped first: their
  // memory and descriptors must not leave between the two readings.
  Sandbox::wait_for_teardowns();
  const MemoryCounters before = read_memory_counters();
  const AnonBreakdown anon_before = read_anon_breakdown();
  const size_t fds_before = count_entries();
  std::vector<std::unique_ptr<Sandbox>> kids;
  ForkFailures failures;
  for (unsigned i = 0; i < k; ++i) {
    kids.push_back(fork_and_exec_retry([&t] { return t.fork(); }, failures).sandbox);
  }
  const bool full_after = wait_pool_full(t, pool, kPoolWait);
  const MemoryCounters after = read_memory_counters();
  const AnonBreakdown anon_after = read_anon_breakdown();
  const size_t fds_after = count_entries();
  s.notes.push_back("counter deltas are (after - before) / " + std::to_string(k) +
                    ", read from /proc/self/status and /proc/meminfo; " +
                    pool_note(full_before, full_after, pool));
  if (failures.count() > 0) {
    s.notes.push_back(failures.note(k + failures.count()) +
                      " (a failed child is torn down before the next try, but its kernel "
                      "memory may not be freed at once)");
  }
  s.notes.push_back("RssFile/RssShmem count a template page once per mapping, so they overstate "
                    "what the host holds: template pages are resident once, shared");
  add_usage_rows(s, kids);
  add_per_child_values(s, per_child(before, after, k));
  add_anon_values(s, anon_before, anon_after, k);
  add_count_values(s, "fds", "file descriptors open", fds_before, fds_after, k);
  destroy_all(kids);
  return s;
}

ReportSection measure_max_live(Template& t, size_t pool, unsigned n, uint64_t template_bytes,
                               const FdLimits& fd_limits) {
  ReportSection s;
  s.key = "max_live";
  s.title = "forked sandboxes alive at once (pooled forks, each after " + first_exec_text() + "), up to " +
            std::to_string(n) + ")";
  std::fprintf(stderr, "  waiting for the pool of %zu\n", pool);
  const bool full_before = wait_pool_full(t, pool, kPoolWait);
  std::fprintf(stderr, "  pool %s; forking\n", full_before ? "full" : "NOT full after 180 s");
  Sandbox::wait_for_teardowns();  // the pool's warm-up child reaped before the first reading
  const MemoryCounters before = read_memory_counters();
  const AnonBreakdown anon_before = read_anon_breakdown();
  const size_t fds_before = count_entries();
  const size_t threads_before = count_entries("/proc/self/task");
  std::vector<std::unique_ptr<Sandbox>> kids;
  std::vector<double> fork_ms;
  std::string stop = "reached --max-live";
  while (kids.size() < n) {
    const MemoryCounters now = read_memory_counters();
    if (now.mem_available && *now.mem_available < kHostReserve) {
      stop = "host MemAvailable fell below " + std::to_string(kHostReserve >> 20) +
             " MiB (stopped before the OOM killer would act)";
      break;
    }
    try {
      ForkedChild c = fork_and_exec(t);
      fork_ms.push_back(c.fork_call_ms);
      kids.push_back(std::move(c.sandbox));
    } catch (const std::exception& e) {
      stop = "fork " + std::to_string(kids.size() + 1) + " failed: " + e.what();
      break;
    }
    if (n <= 50 || kids.size() % 10 == 0) {
      std::fprintf(stderr, "  %zu children alive (last fork %.1f ms)\n", kids.size(), fork_ms.back());
    }
  }
  std::fprintf(stderr, "  stopped (%s); waiting for the pool\n", stop.c_str());
  const bool full_after = wait_pool_full(t, pool, std::chrono::seconds(60));
  const MemoryCounters after = read_memory_counters();
  const AnonBreakdown anon_after = read_anon_breakdown();
  const size_t fds_after = count_entries();
  const size_t threads_after = count_entries("/proc/self/task");
  const unsigned alive = static_cast<unsigned>(kids.size());
  s.notes.push_back("stopped: " + stop);
  s.notes.push_back("open-file limit: soft " + std::to_string(fd_limits.soft) + ", hard " +
                    std::to_string(fd_limits.hard) + "; " + pool_note(full_before, full_after, pool));
  s.values.push_back({"alive", "children alive at once", "", static_cast<double>(alive), true});
  s.rows.push_back({"fork_call_ms", "fork() call while filling up", "ms", summarize(fork_ms)});
  if (alive == 0) {
    destroy_all(kids);
    return s;
  }
  add_usage_rows(s, kids);
  const PerChildMemory m = per_child(before, after, alive);
  add_per_child_values(s, m);
  add_anon_values(s, anon_before, anon_after, alive);
  add_count_values(s, "fds", "file descriptors open", fds_before, fds_after, alive);
  add_count_values(s, "threads", "threads", threads_before, threads_after, alive);
  add_idle_cpu_values(s, alive, std::chrono::seconds(10));
  add_all_answer_rows(s, kids);
  // Two bases, both printed: what this process's counters attribute to a child, and what the
  // system as a whole lost per child (which adds kernel memory: KVM's vCPU and VM structures,
  // thread stacks, socket buffers; but also any other activity on the host meanwhile).
  const std::optional<double> bases[] = {unshared_cost(m), m.mem_available_drop};
  const char* const basis_key[] = {"", "_memavail"};
  const char* const basis_label[] = {"unshared cost", "MemAvailable drop"};
  bool any = false;
  for (size_t b = 0; b < 2 && alive < 1000; ++b) {  // 1000 alive: measured, not extrapolated
    if (!bases[b] || *bases[b] <= 0) continue;
    any = true;
    const Extrapolation e = extrapolate(*bases[b], 1000, 256 * kMiB, 24 * kGiB);
    s.values.push_back({std::string("extrapolated_1000_gib") + basis_key[b],
                        std::string("EXTRAPOLATED (") + basis_label[b] + "): template + 1000 children",
                        "GiB", e.total_bytes / kGiB, true});
    s.values.push_back({std::string("extrapolated_fit_24gib") + basis_key[b],
                        std::string("EXTRAPOLATED (") + basis_label[b] + "): children that fit in 24 GiB",
                        "", e.children_fit, true});
  }
  if (any) {
    s.notes.push_back(
        "EXTRAPOLATION, not measured: 1000 children of a 256 MiB template on a 24 GiB host, at the "
        "per-child cost measured here, assuming it does not grow with the number alive and the "
        "template is resident once; memory only (the CPU cost of many idle guests is not "
        "measured)" +
        std::string(template_bytes == 256ull << 20
                        ? ""
                        : "; this snapshot is " + std::to_string(template_bytes >> 20) +
                              " MiB, not 256: its children's cost is used as is"));
  }
  destroy_all(kids);
  return s;
}

}  // namespace forkvm::bench
