// Disk image digests kept across processes. A verified restore hashes every disk image its
// snapshot records (RestoreOptions::verify_disks) and a snapshot hashes them for its record:
// the built-in 372 MiB root filesystem took 7.6 s in kvm-lab, and every process paid it again
// (each `forkvm snapshot create`, each `forkvm run --snapshot` of a root-filesystem snapshot).
//
// An image's digest is kept in a small file named by the image's stamp (vmm/file_stamp.hpp):
// device, inode, size, mtime and ctime to the nanosecond. Every write changes mtime and ctime,
// and only the kernel sets ctime, so an image with an equal stamp holds the bytes that were
// hashed. A digest is kept only when the image's times were settle-old (2 s) when hashing
// began: a write in the same clock tick as the last one could otherwise leave the stamp equal.
//
// Where: $FORKVM_DIGEST_CACHE when set (an absolute path; "off", or anything else, turns the
// cache off), else $XDG_CACHE_HOME/forkvm/digests, else $HOME/.cache/forkvm/digests. The
// directory (made 0700 when missing) and each entry must be this user's alone, by the rule
// snapshot files are held to (snapshot::check_private: owned by this user, closed to writes by
// others, an entry with one hard link); otherwise they are not used, since whoever can write
// them could make a changed image pass.
// A cache that cannot be read or written only costs the hash.
#pragma once

#include <time.h>

#include <cstddef>
#include <optional>
#include <string>

#include "vmm/file_stamp.hpp"

namespace forkvm {

/// Entries kept; past it, the least recently written go.
inline constexpr size_t kMaxDigestEntries = 256;

/// The cache directory, made when missing; "" when the cache is off or the directory is not
/// this user's alone.
std::string digest_cache_dir();

/// The digest kept for an image with `stamp`, if any: 64 lowercase hex digits (anything else
/// in the entry counts as none).
std::optional<std::string> cached_disk_digest(const FileStamp& stamp);

/// Keeps `digest` (64 lowercase hex digits) for an image with `stamp`, when its times were
/// settled at `hash_began` (CLOCK_REALTIME, read before the image was read). Never throws.
void keep_disk_digest(const FileStamp& stamp, const std::string& digest,
                      const struct timespec& hash_began) noexcept;

}  // namespace forkvm
