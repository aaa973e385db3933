#include "bench/memory_math.hpp"

namespace forkvm::bench {
namespace {

std::optional<double> spread(const std::optional<uint64_t>& before,
                             const std::optional<uint64_t>& after, unsigned children) {
  const auto d = counter_delta(before, after);
  if (!d || children == 0) return std::nullopt;
  return *d / children;
}

}  // namespace

PerChildMemory per_child(const MemoryCounters& b, const MemoryCounters& a, unsigned children) {
  PerChildMemory m;
  m.vm_rss = spread(b.vm_rss, a.vm_rss, children);
  m.rss_anon = spread(b.rss_anon, a.rss_anon, children);
  m.rss_file = spread(b.rss_file, a.rss_file, children);
  m.rss_shmem = spread(b.rss_shmem, a.rss_shmem, children);
  m.vm_pte = spread(b.vm_pte, a.vm_pte, children);
  m.sec_page_tables = spread(b.sec_page_tables, a.sec_page_tables, children);
  // Reversed: MemAvailable falls as children are made.
  m.mem_available_drop = spread(a.mem_available, b.mem_available, children);
  return m;
}

std::optional<double> unshared_cost(const PerChildMemory& m) {
  if (!m.rss_anon || !m.vm_pte) return std::nullopt;
  return *m.rss_anon + *m.vm_pte + m.sec_page_tables.value_or(0);
}

Extrapolation extrapolate(double per_child_bytes, double children, double template_bytes,
                          double host_bytes) {
  Extrapolation e;
  e.children = children;
  e.template_bytes = template_bytes;
  e.host_bytes = host_bytes;
  e.per_child_bytes = per_child_bytes;
  e.total_bytes = template_bytes + children * per_child_bytes;
  e.children_fit = per_child_bytes > 0 ? (host_bytes - template_bytes) / per_child_bytes : 0;
  return e;
}

}  // namespace forkvm::bench
