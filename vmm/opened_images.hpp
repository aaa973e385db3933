// Snapshot directories this process has opened (VmImage::open), so that opening one again skips
// reading, hashing and decoding it while none of its files changed. Restoring the same snapshot
// over and over (Sandbox::restore per task, forkvm run --snapshot in a loop) otherwise re-parses
// its state.json each time (1.3 ms natively for a 77 KB state, 22-28 ms in kvm-lab) and, with
// verify_memory, re-hashes and copies all of its memory.
//
// What "changed" means: a snapshot directory is identified by its canonical path and the
// FileStamp (vmm/file_stamp.hpp) of the directory, of every entry in it and of every disk image
// its state names. File times tick with the kernel's coarse clock (a jiffy, or seconds on some
// file systems), so a write in the same tick as the one before it may leave them equal: a
// snapshot is remembered only once every time in its stamp is settle() old, and any later write
// then gets a later time.
#pragma once

#include <chrono>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "vmm/file_stamp.hpp"

namespace forkvm {

class VmImage;

/// A snapshot directory's stamp: its canonical path, itself, and its entries sorted by name.
struct DirStamp {
  std::string path;
  std::vector<FileStamp> files;
  bool operator==(const DirStamp&) const = default;
};

/// The stamp of `dir`, or nullopt when it cannot be taken (a missing directory or file, more
/// than kMaxEntries entries, anything but regular files in it): such a directory is never
/// reused, and VmImage::open reports what is wrong with it.
std::optional<DirStamp> stamp_directory(const std::string& dir);
/// The stamps of the disk images at `paths` (following no symlink in the last component), or
/// nullopt when one cannot be stat'ed.
std::optional<std::vector<FileStamp>> stamp_files(const std::vector<std::string>& paths);

/// The process-wide table of opened snapshots. Thread-safe.
class OpenedImages {
 public:
  /// More entries than this in a snapshot directory: not stamped, never reused.
  static constexpr size_t kMaxEntries = 64;

  static OpenedImages& instance();

  /// An image opened from a directory with this stamp, still alive, whose checks cover what is
  /// asked (memory verified when `verify_memory`, disks when `verify_disks`) and whose disk
  /// images have the stamps they had; nullptr otherwise.
  std::shared_ptr<const VmImage> find(const DirStamp& stamp, bool verify_memory,
                                      bool verify_disks);
  /// Records `image`, opened from a directory with `stamp` (taken before and after the open,
  /// and equal) and disk images with `disks`, with the checks it passed. Keeps it alive while
  /// it is among the set_keep() most recently remembered; otherwise only while something else
  /// holds it (a VM made from it, a Template).
  void remember(DirStamp stamp, std::vector<FileStamp> disks, bool verified_memory,
                bool verified_disks, const std::shared_ptr<const VmImage>& image);
  /// How many of the most recently opened images are kept alive for reuse (default 1; 0: only
  /// images still in use are reused). Lowering it releases the others at once.
  void set_keep(size_t n);
  /// Forgets every entry (kept images are released).
  void clear();
  /// Whether every mtime and ctime in `stamp` and `disks` is at least settle() in the past (see
  /// the file comment); only such a snapshot is remembered.
  bool settled(const DirStamp& stamp, const std::vector<FileStamp>& disks) const;
  /// How old a snapshot's file times must be before it is remembered (default 2 s: longer than
  /// any file system's time granularity on Linux but FAT's). Tests shorten it.
  void set_settle(std::chrono::nanoseconds t);

 private:
  struct Entry {
    DirStamp stamp;
    std::vector<FileStamp> disks;
    bool verified_memory = false;
    bool verified_disks = false;
    std::weak_ptr<const VmImage> image;
  };
  void prune_locked();  // drops entries whose image is gone

  mutable std::mutex mu_;
  std::vector<Entry> entries_;  // at most one per live image
  std::vector<std::shared_ptr<const VmImage>> kept_;  // oldest first, at most keep_
  size_t keep_ = 1;
  std::chrono::nanoseconds settle_ = kStampSettle;
};

}  // namespace forkvm
