// Temp dirs of processes that died without removing them (a crash, SIGKILL): each private temp
// dir (make_temp_dir) records its owner in OWNER_FILE, "<pid> <start time>\n" (the start time in
// clock ticks since boot, field 22 of /proc/<pid>/stat), so the next run can tell a dead owner,
// or a pid since reused by another process, from a live one. Private to the library.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace forkvm::stale_dirs {

/// The file in each temp dir that names its owner.
inline constexpr const char* kOwnerFile = ".forkvm-owner";

/// The start time of process `pid` (clock ticks after boot), or nullopt when there is no such
/// process (or its /proc entry cannot be read).
std::optional<uint64_t> process_start_time(pid_t pid);

/// Writes this process's OWNER_FILE into `dir`. Throws ConfigError naming `dir`.
void record_owner(const std::string& dir);

/// Removes every directory "forkvm-*" directly in `base` that belongs to this user and whose
/// OWNER_FILE names a process that is gone (no such pid, or a pid whose start time differs:
/// reused). Never touches a directory without a readable, well-formed owner file (an older
/// forkvm's, or one being created right now), one of a live owner, one of another user, or a
/// symbolic link. Errors are ignored (best effort). Returns how many were removed.
size_t remove_stale(const std::string& base);

/// remove_stale(base) the first time it is called for `base` in this process; later calls
/// return 0 at once.
size_t remove_stale_once(const std::string& base);

}  // namespace forkvm::stale_dirs
