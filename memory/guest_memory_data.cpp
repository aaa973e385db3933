// GuestMemory::data_extents(): where a RAM may hold non-zero bytes, from what the kernel
// already knows (a memfd's holes, an image's extents, pagemap), so that a snapshot writer reads
// only those and never faults in the rest: reading a never-written page of a memfd mapped
// shared allocates it, so writing a booted VM's 256 MiB snapshot that way made its memfd hold
// all 256 MiB (20 MiB written by the guest).
#include <string>
#include <vector>

#include "base/file_extents.hpp"
#include "base/text.hpp"
#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"
#include "memory/memory_image.hpp"

namespace forkvm {
namespace {

using Extent = MemoryImage::Extent;

/// The data (not hole) extents of the first `size` bytes of `fd`.
std::vector<Extent> file_data(int fd, uint64_t size) {
  std::vector<Extent> out;
  if (const int err = file_data_extents(fd, 0, size, out); err != 0) {
    throw GuestMemoryError("cannot find the data of guest memory (lseek SEEK_DATA): " +
                           errno_text(err));
  }
  return out;
}

}  // namespace

std::vector<Extent> GuestMemory::data_extents() const {
  switch (backing_) {
    case Backing::kReserved:
      return {};
    case Backing::kSharedFile:
      // Every page lives in the memfd; a hole was never written and reads as zero.
      return file_data(fd_.get(), size());
    case Backing::kAnonymous:
      // The pages ever touched (present or swapped); the others read as zero.
      return private_extents();
    case Backing::kPrivateFile: {
      // The image's data (its base file's and its layers'), and this mapping's own copies.
      std::vector<Extent> all = file_data(image_->base_fd(), image_->size());
      for (const auto& layer : image_->layers()) {
        all.insert(all.end(), layer->extents.begin(), layer->extents.end());
      }
      const std::vector<Extent> own = private_extents();
      all.insert(all.end(), own.begin(), own.end());
      return unite_extents(std::move(all));
    }
  }
  return {{0, size()}};
}

}  // namespace forkvm
