// What the first execs of VMs restored from a snapshot touched (VmImage::first_touches()), kept
// across processes: the next process that opens the same memory file starts with them, so that
// its first VMs take those pages ahead (TemplateOptions::prefault, RestoreOptions::prefault)
// instead of faulting them in one at a time, as only later VMs of an image did before.
//
// An entry of kind "touches" in the stamp cache (vmm/stamp_cache.hpp), found by the stamp of the
// snapshot's memory file, in text:
//   forkvm-first-touches 1
//   memory <bytes of the memory file>
//   lessons <how many VMs taught it, 1..kFirstTouchLessons>
//   w <offset> <length>     (pages the first execs wrote: copied ahead), sorted, then
//   r <offset> <length>     (pages they only read: mapped ahead), sorted
// The entry is input from a file: it is read strictly (decode_first_touches) and anything it
// does not expect makes it count as none. Even a wrong set costs only host memory and time:
// taking pages ahead never changes what the guest reads.
#pragma once

#include <time.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "forkvm/vm.hpp"
#include "vmm/file_stamp.hpp"

namespace forkvm {

/// Most ranges an entry may list (written and read together); a real image's first touches
/// are a few thousand.
inline constexpr size_t kMaxKeptTouchRanges = 65536;
/// Largest entry read, in bytes (kMaxKeptTouchRanges lines of two 20-digit numbers fit).
inline constexpr size_t kMaxKeptTouchBytes = 4 * 1024 * 1024;

/// A kept set and how many VMs had taught it.
struct KeptTouches {
  TouchedMemory touches;
  unsigned lessons = 0;
};

/// The entry's text for `touches` of a memory file of `memory_size` bytes.
std::string encode_first_touches(const TouchedMemory& touches, uint64_t memory_size,
                                 unsigned lessons);

/// The set in `text`, when it is exactly the format above for a memory file of `memory_size`
/// bytes: page-aligned, non-empty ranges inside the file, each list sorted with no overlap, at
/// most kMaxKeptTouchRanges of them, 1..kFirstTouchLessons lessons. nullopt otherwise.
std::optional<KeptTouches> decode_first_touches(std::string_view text, uint64_t memory_size);

/// The set kept for the memory file with `stamp` of `memory_size` bytes, if any.
std::optional<KeptTouches> cached_first_touches(const FileStamp& stamp, uint64_t memory_size);

/// Keeps `touches` for the memory file with `stamp`, when its times were settled at
/// `read_began` (vmm/stamp_cache.hpp). Never throws.
void keep_first_touches(const FileStamp& stamp, const TouchedMemory& touches,
                        uint64_t memory_size, unsigned lessons,
                        const struct timespec& read_began) noexcept;

}  // namespace forkvm
