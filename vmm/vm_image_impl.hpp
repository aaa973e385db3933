// VmImage::Impl: what a frozen machine holds (its configuration, frozen memory and decoded
// state). Private to the library: vm_snapshot.cpp makes and uses it, image_digest.cpp reads it.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "devices/virtio/block/block_backend.hpp"
#include "forkvm/vm.hpp"
#include "memory/memory_image.hpp"
#include "snapshot/snapshot.hpp"
#include "vmm/machine_components.hpp"

namespace forkvm {

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
};

}  // namespace forkvm
