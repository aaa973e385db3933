// Where this process's private (anonymous) pages are, from /proc/self/smaps: copy-on-write
// copies in private file mappings (a forked VM's guest RAM over its image), thread stacks,
// malloc's [heap], and other anonymous mappings (malloc's large blocks and thread arenas).
// `forkvm-bench fork` spreads the difference of two readings over the children made between
// them, which says what of a child's RssAnon is guest RAM and what is host-side state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace forkvm::bench {

/// Bytes of the smaps "Anonymous:" lines, by kind of mapping.
struct AnonBreakdown {
  uint64_t file_private = 0;  ///< private file mappings (pathname "/..."): guest RAM copies
  uint64_t stacks = 0;        ///< mappings holding a thread's stack pointer, and "[stack]"
  uint64_t heap = 0;          ///< "[heap]": malloc's main arena
  uint64_t other = 0;         ///< every other anonymous mapping
  size_t mappings = 0;        ///< mappings (VMAs) of every kind
};

/// Sorts each mapping of a /proc/PID/smaps text by its pathname and by whether it contains
/// one of `stack_pointers` (threads' stack pointers; a stack is one mapping once its guard
/// page is split off). Lines that are neither a mapping header nor a "Name: N kB" field are
/// skipped.
AnonBreakdown anon_breakdown_from(std::string_view smaps, const std::vector<uint64_t>& stack_pointers);

/// The stack pointer of each of this process's threads that is blocked in a system call, from
/// /proc/self/task/TID/syscall ("running" threads have none there and are left out).
std::vector<uint64_t> thread_stack_pointers();

/// anon_breakdown_from(/proc/self/smaps, thread_stack_pointers()). Throws std::runtime_error
/// when smaps cannot be read.
AnonBreakdown read_anon_breakdown();

}  // namespace forkvm::bench
