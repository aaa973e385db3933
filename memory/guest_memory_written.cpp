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
  std::vector<Extent> regions;  // each region's place in the memory file, as the logs index them
  regions.reserve(regions_.size());
  for (const Region& r : regions_) regions.push_back({r.file_offset, r.size});
  host_written = write_log_->take();
  std::vector<Extent> written = written_extents(guest_written, host_written, regions);
  if (!check_requested() || !image_) return written;

  std::vector<uint8_t> page(layout::kPageSize);
  for_each_piece(private_extents(), [&](const ExtentPiece& p) {
    for (uint64_t at = 0; at < p.length; at += layout::kPageSize) {
      if (covers(written, p.file_offset + at)) continue;
      // Private but not logged: fine when the content is the image's (a page taken ahead by
      // MADV_POPULATE_WRITE, Vm::prefault_memory), a missed write otherwise.
      read_image_page(*image_, p.file_offset + at, page.data());
      if (std::memcmp(page.data(), p.host + at, layout::kPageSize) != 0) {
        throw GuestMemoryError("freeze: the page at guest-physical " + hex(p.gpa + at) +
                               " was written but neither KVM's dirty log nor the write log has it");
      }
    }
    return true;
  });
  return written;
}

}  // namespace forkvm
