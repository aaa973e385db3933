// Disk image digests kept across processes. A verified restore hashes every disk image its
// snapshot records (RestoreOptions::verify_disks) and a snapshot hashes them for its record:
// the built-in 372 MiB root filesystem took 7.6 s in kvm-lab, and every process paid it again
// (each `forkvm snapshot create`, each `forkvm run --snapshot` of a root-filesystem snapshot).
//
// An image's digest is an entry of kind "sha256" in the stamp cache (vmm/stamp_cache.hpp), found
// by the image's stamp; that file says why an equal stamp means equal bytes, when an entry is
// kept, and why entries must be this user's alone (whoever could write one could make a changed
// image pass). A cache that cannot be read or written only costs the hash.
#pragma once

#include <time.h>

#include <optional>
#include <string>

#include "vmm/file_stamp.hpp"

namespace forkvm {

/// The digest kept for an image with `stamp`, if any: 64 lowercase hex digits (anything else
/// in the entry counts as none).
std::optional<std::string> cached_disk_digest(const FileStamp& stamp);

/// Keeps `digest` (64 lowercase hex digits) for an image with `stamp`, when its times were
/// settled at `hash_began` (CLOCK_REALTIME, read before the image was read). Never throws.
void keep_disk_digest(const FileStamp& stamp, const std::string& digest,
                      const struct timespec& hash_began) noexcept;

}  // namespace forkvm
