// What an image learns from its VMs' first execs (VmImage::first_touches(),
// vmm/touched_memory.hpp) and, for an image opened from a snapshot directory, keeps across
// processes under its memory file's stamp (vmm/touches_cache.hpp).
#include <utility>

#include "forkvm/errors.hpp"
#include "snapshot/state_file.hpp"
#include "vmm/opened_images.hpp"
#include "vmm/touched_memory.hpp"
#include "vmm/touches_cache.hpp"
#include "vmm/vm_image_impl.hpp"
#include "vmm/vm_impl.hpp"

namespace forkvm {

std::shared_ptr<const TouchedMemory> VmImage::first_touches() const {
  std::lock_guard lock(impl_->touches_mu);
  return impl_->first_touches;
}

void VmImage::Impl::recall_first_touches(const DirStamp& dir,
                                          const struct timespec& read_began) const {
  const FileStamp* file = nullptr;
  for (const FileStamp& f : dir.files) {
    if (f.name == snapshot::kMemoryFile) file = &f;
  }
  if (file == nullptr) return;
  std::optional<KeptTouches> kept = cached_first_touches(*file, memory->size());
  std::lock_guard lock(touches_mu);
  memory_stamp = *file;
  memory_read_began = read_began;
  if (kept && !first_touches) {
    first_touches = std::make_shared<const TouchedMemory>(std::move(kept->touches));
    touch_lessons = kept->lessons;
  }
}

void VmImage::Impl::keep_first_touches_locked() const {
  if (memory_stamp && first_touches) {
    keep_first_touches(*memory_stamp, *first_touches, memory->size(), touch_lessons,
                       memory_read_began);
  }
}

void VmImage::Impl::inherit_first_touches(const Impl& from) {
  std::shared_ptr<const TouchedMemory> touches;
  unsigned lessons = 0;
  {
    std::lock_guard lock(from.touches_mu);
    touches = from.first_touches;
    lessons = from.touch_lessons;
  }
  // Not yet shared: no other thread can see this image.
  std::lock_guard lock(touches_mu);
  first_touches = std::move(touches);
  touch_lessons = lessons;
}

bool Vm::teach_first_touches() const {
  if (!impl_->image) {
    throw InvalidStateError("teach_first_touches: the VM was not made from an image");
  }
  const VmImage::Impl& img = impl_->image->impl();
  {
    std::lock_guard lock(img.touches_mu);
    if (img.touch_lessons >= kFirstTouchLessons) return false;  // skips the pagemap read
  }
  TouchedMemory touched = touched_memory();  // not under the lock
  std::lock_guard lock(img.touches_mu);
  if (img.touch_lessons >= kFirstTouchLessons) return false;  // others told meanwhile
  ++img.touch_lessons;
  bool added = true;
  if (!img.first_touches) {
    img.first_touches = std::make_shared<const TouchedMemory>(std::move(touched));
  } else {
    // Published as a new set: VMs and pools that hold the old one keep it unchanged.
    auto more = std::make_shared<const TouchedMemory>(united_touches(*img.first_touches, touched));
    const auto bytes = [](const TouchedMemory& t) { return t.written_bytes() + t.read_bytes(); };
    added = more->written_bytes() != img.first_touches->written_bytes() ||
            bytes(*more) != bytes(*img.first_touches);
    if (added) img.first_touches = std::move(more);
  }
  // Kept with its lesson count even when this lesson added nothing, so that a later process
  // does not ask again. Under the lock, so that entries are written in lesson order (a few
  // hundred KiB at most, at most kFirstTouchLessons times per image).
  img.keep_first_touches_locked();
  return added;
}

TouchedMemory Vm::touched_memory() const {
  const GuestMemory::Touched t = impl_->memory.touched_extents();
  TouchedMemory out;
  for (const auto& e : t.written) out.written.emplace_back(e.offset, e.length);
  for (const auto& e : t.read) out.read.emplace_back(e.offset, e.length);
  return out;
}

}  // namespace forkvm
