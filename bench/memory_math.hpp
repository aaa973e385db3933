// Memory arithmetic of `forkvm-bench fork` (no KVM, unit-tested): counter deltas spread over the
// children that caused them, and the labelled extrapolation to many children on a big host.
#pragma once

#include <optional>

#include "bench/proc_status.hpp"

namespace forkvm::bench {

/// (after - before) / children for each counter, in bytes; nullopt where a counter is unknown.
/// mem_available_drop is before - after (what the system as a whole lost).
struct PerChildMemory {
  std::optional<double> vm_rss, rss_anon, rss_file, rss_shmem, vm_pte, sec_page_tables;
  std::optional<double> mem_available_drop;
};

/// Spreads the deltas between two readings over `children` (> 0) children.
PerChildMemory per_child(const MemoryCounters& before, const MemoryCounters& after,
                         unsigned children);

/// What one child costs the host that no other child shares: its private pages (RssAnon: the
/// copy-on-write copies, thread stacks, buffers), this process's page tables for it (VmPTE)
/// and KVM's NPT/EPT tables (SecPageTables, system-wide, added when the kernel reports it).
/// Template pages a child only reads are shared (counted once, in the page cache) and left out.
/// nullopt when RssAnon or VmPTE is unknown.
std::optional<double> unshared_cost(const PerChildMemory& m);

/// "N children of a T-byte template on an H-byte host", from a measured per-child cost: an
/// extrapolation, assuming the cost per child does not grow with the number alive and the
/// whole template is resident once.
struct Extrapolation {
  double children = 0;
  double template_bytes = 0;
  double host_bytes = 0;
  double per_child_bytes = 0;
  double total_bytes = 0;   ///< template + children * per child
  double children_fit = 0;  ///< (host - template) / per child
};

Extrapolation extrapolate(double per_child_bytes, double children, double template_bytes,
                          double host_bytes);

}  // namespace forkvm::bench
