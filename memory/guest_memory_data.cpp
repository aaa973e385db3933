// GuestMemory::data_extents(): where a RAM may hold non-zero bytes, from what the kernel
// already knows (a memfd's holes, an image's extents, pagemap), so that a snapshot writer reads
// only those and never faults in the rest: reading a never-written page of a memfd mapped
// shared allocates it, so writing a booted VM's 256 MiB snapshot that way made its memfd hold
// all 256 MiB (20 MiB written by the guest).
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "base/text.hpp"
#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"
#include "memory/memory_image.hpp"

namespace forkvm {
namespace {

using Extent = MemoryImage::Extent;

/// The data (not hole) extents of the first `size` bytes of `fd` (SEEK_DATA/SEEK_HOLE). A file
/// system without hole support reports everything as data.
std::vector<Extent> file_data(int fd, uint64_t size) {
  std::vector<Extent> out;
  for (uint64_t pos = 0; pos < size;) {
    const off_t d = lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (d < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      if (errno == EINVAL) {      // no SEEK_DATA here: all of it may be data
        out.push_back({pos, size - pos});
        break;
      }
      throw GuestMemoryError("cannot find the data of guest memory (lseek SEEK_DATA): " +
                             errno_text(errno));
    }
    const uint64_t begin = std::min(size, static_cast<uint64_t>(d));
    if (begin >= size) break;
    const off_t h = lseek(fd, static_cast<off_t>(begin), SEEK_HOLE);
    const uint64_t end =
        h < 0 || static_cast<uint64_t>(h) <= begin ? size : std::min(size, static_cast<uint64_t>(h));
    out.push_back({begin, end - begin});
    pos = end;
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
