// GuestMemory::written_since_freeze: the pages a freeze of image-mapped RAM copies, from the
// guest's record (KVM's dirty log) and host code's (the write log) instead of a pagemap scan; and,
// with FORKVM_CHECK_WRITE_LOG=1 in the environment (the fork tests set it), the logs checked
// against that scan: a page the mapping made private that no log names must still hold the
// image's bytes, else the logs missed a write and the children would get a stale page.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/text.hpp"
#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"
#include "memory/layout.hpp"

namespace forkvm {
namespace {

using Extent = MemoryImage::Extent;

bool check_requested() noexcept {
  const char* v = std::getenv("FORKVM_CHECK_WRITE_LOG");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

bool covers(const std::vector<Extent>& sorted, uint64_t offset) noexcept {
  // First extent that ends after `offset`.
  auto it = std::lower_bound(sorted.begin(), sorted.end(), offset,
                             [](const Extent& e, uint64_t o) { return e.offset + e.length <= o; });
  return it != sorted.end() && it->offset <= offset;
}

/// The image's bytes of the page at `offset`: from the topmost layer that holds it, else the
/// base. Throws GuestMemoryError when a file cannot be read.
void read_image_page(const MemoryImage& image, uint64_t offset, uint8_t* out) {
  int fd = image.base_fd();
  for (auto it = image.layers().rbegin(); it != image.layers().rend(); ++it) {
    if (covers((*it)->extents, offset)) {
      fd = (*it)->fd.get();
      break;
    }
  }
  const ssize_t n = ::pread(fd, out, layout::kPageSize, static_cast<off_t>(offset));
  if (n != static_cast<ssize_t>(layout::kPageSize)) {
    throw GuestMemoryError("freeze: checking the write log: cannot read the image at file offset " +
                           std::to_string(offset) + ": " + (n < 0 ? errno_text(errno) : "short read"));
  }
}

}  // namespace

std::vector<Extent> GuestMemory::written_since_freeze(const PageBitmaps& guest_written,
                                                      PageBitmaps& host_written) const {
  std::vector<uint64_t> offsets;
  std::vector<uint64_t> sizes;
  for (const Region& r : regions_) {
    offsets.push_back(r.file_offset);
    sizes.push_back(r.size);
  }
  host_written = write_log_->take();
  std::vector<Extent> written = written_extents(guest_written, host_written, offsets, sizes);
  if (!check_requested() || !image_) return written;

  std::vector<uint8_t> page(layout::kPageSize);
  for (const Extent& e : private_extents()) {
    for (uint64_t o = e.offset; o < e.offset + e.length; o += layout::kPageSize) {
      if (covers(written, o)) continue;
      // Private but not logged: fine when the content is the image's (a page taken ahead by
      // MADV_POPULATE_WRITE, Vm::prefault_memory), a missed write otherwise.
      const Region* region = nullptr;
      for (const Region& r : regions_) {
        if (o >= r.file_offset && o - r.file_offset < r.size) region = &r;
      }
      if (region == nullptr) continue;
      read_image_page(*image_, o, page.data());
      if (std::memcmp(page.data(), region->host + (o - region->file_offset), layout::kPageSize) != 0) {
        throw GuestMemoryError("freeze: the page at guest-physical " +
                               hex(region->gpa + (o - region->file_offset)) +
                               " was written but neither KVM's dirty log nor the write log has it");
      }
    }
  }
  return written;
}

}  // namespace forkvm
