// Reading the kernel's per-process and system-wide memory counters for the fork benchmark:
// /proc/self/status (VmRSS, RssAnon, RssFile, RssShmem, VmPTE) and /proc/meminfo
// (MemAvailable, SecPageTables: KVM's NPT/EPT tables, which VmPTE does not count); this
// process's open file descriptors and its RLIMIT_NOFILE.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace forkvm::bench {

/// The whole text of a file such as /proc/self/status. Throws std::runtime_error naming `path`
/// when it cannot be read.
std::string read_text(const std::string& path);

/// The "Name:   123 kB" lines of a /proc status-style text, as bytes by name. Lines without a
/// "kB" unit (counts such as "Threads: 5") and malformed lines are skipped; a name that repeats
/// keeps its last value.
std::map<std::string, uint64_t> parse_kb_lines(std::string_view text);

/// The counters the fork benchmark compares before and after making children; nullopt when the
/// kernel does not report one (e.g. SecPageTables before Linux 6.1).
struct MemoryCounters {
  std::optional<uint64_t> vm_rss;           ///< /proc/self/status VmRSS
  std::optional<uint64_t> rss_anon;         ///< RssAnon: private pages, copy-on-write copies too
  std::optional<uint64_t> rss_file;         ///< RssFile: file pages mapped (the snapshot's)
  std::optional<uint64_t> rss_shmem;        ///< RssShmem: tmpfs/memfd pages mapped
  std::optional<uint64_t> vm_pte;           ///< VmPTE: this process's page tables
  std::optional<uint64_t> mem_available;    ///< /proc/meminfo MemAvailable (whole system)
  std::optional<uint64_t> sec_page_tables;  ///< /proc/meminfo SecPageTables (whole system)
};

/// Builds MemoryCounters from the texts of /proc/self/status and /proc/meminfo.
MemoryCounters memory_counters_from(std::string_view status_text, std::string_view meminfo_text);

/// Reads /proc/self/status and /proc/meminfo now. Throws std::runtime_error when they cannot be
/// read.
MemoryCounters read_memory_counters();

/// after - before for one counter, as a signed number of bytes; nullopt unless both are known.
std::optional<double> counter_delta(const std::optional<uint64_t>& before,
                                    const std::optional<uint64_t>& after);

/// Entries of the directory `dir` other than "." and "..": with the default, the file
/// descriptors this process has open (including the one that reads the directory, so compare
/// two counts rather than read one as is). Throws std::runtime_error when `dir` cannot be read.
size_t count_entries(const std::string& dir = "/proc/self/fd");

/// This process's open file descriptors whose target (readlink of /proc/self/fd/N) starts with
/// `prefix`, e.g. "/memfd:forkvm-ram-layer" for the memfds of memory-image layers. Throws
/// std::runtime_error when /proc/self/fd cannot be read.
size_t count_fds_to(std::string_view prefix);

/// Files, directories and other entries under `dir` at any depth (`dir` itself not counted);
/// symbolic links are counted, not followed. Throws std::runtime_error when `dir` or a
/// directory inside it cannot be read.
size_t count_tree_entries(const std::string& dir);

/// RLIMIT_NOFILE before and after raise_fd_limit().
struct FdLimits {
  uint64_t soft_before = 0;  ///< the soft limit the process started with
  uint64_t soft = 0;         ///< the soft limit now in force
  uint64_t hard = 0;         ///< the hard limit (the most the soft limit can be raised to)
};

/// forkvm::raise_open_file_limit() (each forked child holds a dozen or so descriptors, so the
/// usual soft 1024 caps the children alive at once), with the limits before and after. A
/// refused raise leaves the old soft limit.
FdLimits raise_fd_limit();

}  // namespace forkvm::bench
