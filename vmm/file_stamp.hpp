// What "this file is unchanged" means in the VMM: a stamp of its metadata, taken without reading
// its bytes. Two users: the snapshot directories VmImage::open reuses (vmm/opened_images.hpp)
// and the disk image digests it caches (vmm/snapshot_disks.cpp).
//
// A stamp holds device, inode, mode, owner, link count, size, mtime and ctime, to the
// nanosecond. Any write to a file changes its mtime, and every write or metadata change (chmod,
// chown, link, rename over it, touch) changes its ctime, which only the kernel sets: a file with
// an equal stamp holds the same bytes and passes the same owner, mode and link checks.
// File times tick with the kernel's coarse clock, so two writes within one tick can leave equal
// times; a caller that must see every write waits for the times to be old enough
// (OpenedImages::settled).
#pragma once

#include <sys/stat.h>

#include <time.h>

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>

namespace forkvm {

/// One file's identity and the metadata that any change to it changes (see the file comment).
struct FileStamp {
  std::string name;  ///< the entry's name in its directory, or a file's path
  uint64_t dev = 0, ino = 0, size = 0, nlink = 0;
  uint32_t mode = 0, uid = 0;
  int64_t mtime_s = 0, mtime_ns = 0, ctime_s = 0, ctime_ns = 0;
  auto operator<=>(const FileStamp&) const = default;
};

/// The stamp of the file `st` describes, under `name`.
FileStamp stamp_of(std::string name, const struct stat& st);
/// The stamp of the open file `fd` under `name`, or nullopt (with errno set) when fstat fails.
std::optional<FileStamp> stamp_fd(std::string name, int fd);

/// How old a file's times must be before its stamp stands for its bytes (times_settled()):
/// more than the coarse clock's tick, with room for file systems that keep whole seconds.
inline constexpr std::chrono::seconds kStampSettle{2};

/// Whether the mtime and ctime of `f` are both at least `settle` before `now` (CLOCK_REALTIME,
/// which file times follow): a later write to the file then gets a later time, so the stamp
/// cannot stay the same across it.
bool times_settled(const FileStamp& f, const struct timespec& now, std::chrono::nanoseconds settle);

}  // namespace forkvm
