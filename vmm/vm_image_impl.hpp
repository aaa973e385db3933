// VmImage::Impl: what a frozen machine holds (its configuration, frozen memory and decoded
// state). Private to the library: vm_snapshot.cpp makes and uses it, image_digest.cpp reads it,
// image_touches.cpp keeps what it learns.
#pragma once

#include <time.h>

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "devices/virtio/block/block_backend.hpp"
#include "forkvm/vm.hpp"
#include "memory/memory_image.hpp"
#include "snapshot/snapshot.hpp"
#include "vmm/file_stamp.hpp"
#include "vmm/machine_components.hpp"

namespace forkvm {

struct DirStamp;

struct VmImage::Impl {
  snapshot::MachineConfig machine;
  std::shared_ptr<const MemoryImage> memory;
  MachineComponents components;
  /// The frozen disks of machine.disks, in the same order: every VM made from this image
  /// opens a child of each (a duplicate descriptor of a read-only image, a fresh overlay over
  /// a copy-on-write disk's layers), never a copy.
  std::vector<std::shared_ptr<const FrozenDisk>> disks;
  /// The freeze found the written pages in the logs (VmImage::written_pages_logged()).
  bool written_pages_logged = false;
  /// VmImage::first_touches(): learned after the image was made (Vm::teach_first_touches), by
  /// any thread, from up to kFirstTouchLessons VMs (vmm/touched_memory.hpp); each lesson that
  /// adds pages publishes a new set.
  mutable std::mutex touches_mu;
  mutable std::shared_ptr<const TouchedMemory> first_touches;  // guarded by touches_mu
  mutable unsigned touch_lessons = 0;                          // guarded by touches_mu
  /// The stamp of the snapshot's memory file, for an image opened from a directory whose
  /// stamp held across the open (VmImage::open), and when the open began reading it: the key
  /// and the settle time of what it learns (vmm/touches_cache.hpp). Guarded by touches_mu.
  mutable std::optional<FileStamp> memory_stamp;
  mutable struct timespec memory_read_began {};

  /// Takes what an earlier process kept for the memory file in `dir` (its entry named
  /// snapshot::kMemoryFile), as first_touches and its lesson count, and records the stamp so
  /// that what this process learns is kept too. Called by VmImage::open before the image is
  /// handed out. In vmm/image_touches.cpp.
  void recall_first_touches(const DirStamp& dir, const struct timespec& read_began) const;
  /// Keeps first_touches under memory_stamp, when there is one. Needs touches_mu.
  void keep_first_touches_locked() const;
  /// For an image Vm::freeze() is making: starts from what `from` (an earlier image of the
  /// same VM, hence the same RAM size and guest layout) has learned, its set and its lesson
  /// count. Not kept across processes: a frozen image has no memory file (memory_stamp).
  void inherit_first_touches(const Impl& from);
};

}  // namespace forkvm
