// What forkvm learned about a file, kept across processes and found again by the file's stamp
// (vmm/file_stamp.hpp: device, inode, size, mtime and ctime to the nanosecond). Two kinds of
// entry use it: a disk image's SHA-256 (vmm/disk_digest_cache.hpp) and the pages the first
// execs of VMs restored from a snapshot's memory file touched (vmm/touches_cache.hpp).
//
// Every write to a file changes its mtime and ctime, and only the kernel sets ctime, so a file
// with an equal stamp holds the bytes the entry was learned from. An entry is kept only when the
// file's times were kStampSettle old when the file was read: a write in the same clock tick as
// the last one could otherwise leave the stamp equal.
//
// Where: $FORKVM_STAMP_CACHE when set (an absolute path; "off", or anything else, turns the
// cache off), else $XDG_CACHE_HOME/forkvm/stamped, else $HOME/.cache/forkvm/stamped. The
// directory (made 0700 when missing) and each entry must be this user's alone, by the rule
// snapshot files are held to (snapshot::check_private: owned by this user, closed to writes by
// others, an entry with one hard link); otherwise they are not used, since whoever can write
// them could make a changed disk image pass its check. A cache that cannot be read or written
// only costs the work it would have saved.
#pragma once

#include <time.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "vmm/file_stamp.hpp"

namespace forkvm {

/// Entries kept of each kind; past it, the least recently written of that kind go.
inline constexpr size_t kMaxStampEntries = 256;

/// The cache directory, made when missing; "" when the cache is off or the directory is not
/// this user's alone.
std::string stamp_cache_dir();

/// The entry of `kind` (lowercase letters and digits, e.g. "sha256") kept for a file with
/// `stamp`, whole, when there is one of at most `max_bytes` that is this user's alone.
std::optional<std::string> read_stamped(std::string_view kind, const FileStamp& stamp,
                                        size_t max_bytes);

/// Keeps `content` as the entry of `kind` for a file with `stamp`, replacing any, when the
/// file's times were settled (kStampSettle) at `read_began` (CLOCK_REALTIME, read before the
/// file's bytes were). Never throws.
void keep_stamped(std::string_view kind, const FileStamp& stamp, const std::string& content,
                  const struct timespec& read_began) noexcept;

}  // namespace forkvm
