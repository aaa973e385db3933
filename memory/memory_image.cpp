// MemoryImage: building images and their overlay layers (the file comment of the header says
// what they are). Mapping them is GuestMemory's job (guest_memory_image.cpp).
#include "memory/memory_image.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "base/positional_io.hpp"
#include "base/text.hpp"
#include "forkvm/errors.hpp"
#include "memory/layout.hpp"

namespace forkvm {
namespace {

using Extent = MemoryImage::Extent;

/// Checks that `pages` are page-aligned, non-empty, sorted, disjoint and inside `size`.
void check_extents(const std::vector<Extent>& pages, uint64_t size) {
  uint64_t end_of_previous = 0;
  for (size_t i = 0; i < pages.size(); ++i) {
    const Extent& e = pages[i];
    if (e.length == 0 || e.offset % layout::kPageSize != 0 || e.length % layout::kPageSize != 0) {
      throw ConfigError("memory image: extent " + std::to_string(i) + " (offset " +
                        std::to_string(e.offset) + ", length " + std::to_string(e.length) +
                        ") is empty or not page-aligned");
    }
    if (e.offset > size || e.length > size - e.offset) {
      throw ConfigError("memory image: extent " + std::to_string(i) + " ends past the " +
                        std::to_string(size) + "-byte image");
    }
    if (i > 0 && e.offset < end_of_previous) {
      throw ConfigError("memory image: extent " + std::to_string(i) +
                        " overlaps or precedes the one before it");
    }
    end_of_previous = e.offset + e.length;
  }
}

/// Joins extents (sorted, disjoint) whose gap is at most `gap` bytes.
std::vector<Extent> coalesce(const std::vector<Extent>& sorted, uint64_t gap) {
  std::vector<Extent> out;
  for (const Extent& e : sorted) {
    if (!out.empty() && e.offset - (out.back().offset + out.back().length) <= gap) {
      out.back().length = e.offset + e.length - out.back().offset;
    } else {
      out.push_back(e);
    }
  }
  return out;
}


/// A sealed memfd of `size` bytes holding the view's bytes at `extents` (holes elsewhere).
std::shared_ptr<const MemoryImage::Layer> make_layer(uint64_t size, std::vector<Extent> extents,
                                                     const MemoryImage::ReadFn& read) {
  auto layer = std::make_shared<MemoryImage::Layer>();
  layer->fd = create_sized_memfd("forkvm-ram-layer", size);
  const int fd = layer->fd.get();
  // Through a bounce buffer and pwrite, not a shared mapping of the memfd: writing a mapping
  // takes a page fault per new page (allocate, zero, map), which made this copy 5-10x slower
  // than the bytes it moves (`forkvm-bench freeze-scan`); pwrite allocates the page-cache pages
  // without faulting and without zeroing what it overwrites whole.
  constexpr uint64_t kChunk = 1 << 20;
  uint64_t longest = 0;
  for (const Extent& e : extents) longest = std::max(longest, e.length);
  std::vector<uint8_t> buf(std::min(kChunk, longest));
  for (const Extent& e : extents) {
    for (uint64_t done = 0; done < e.length;) {
      const uint64_t n = std::min<uint64_t>(buf.size(), e.length - done);
      read(e.offset + done, buf.data(), n);
      if (const int err = pwrite_all(fd, e.offset + done, std::span<const uint8_t>(buf.data(), n)); err != 0) {
        throw GuestMemoryError("cannot fill a memory layer (" + std::to_string(n) + " bytes at " +
                               std::to_string(e.offset + done) + "): " + errno_text(err));
      }
      done += n;
    }
    layer->bytes += e.length;
  }
  add_memfd_seals(fd, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL, "a memory layer");
  layer->extents = std::move(extents);
  return layer;
}

}  // namespace

void check_guest_memory_size(uint64_t size) {
  if (size == 0 || size % layout::kPageSize != 0) {
    throw ConfigError("guest memory size " + std::to_string(size) +
                      " is not a non-zero multiple of 4096");
  }
  // off_t is signed; mmap offsets and ftruncate take it.
  if (size > static_cast<uint64_t>(INT64_MAX) - layout::kGiB) {
    throw ConfigError("guest memory size " + std::to_string(size) + " is too large");
  }
}

Fd create_sized_memfd(const char* name, uint64_t size) {
  Fd fd(memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) throw GuestMemoryError(std::string("memfd_create (") + name + "): " + errno_text(errno));
  if (ftruncate(fd.get(), static_cast<off_t>(size)) < 0) {
    throw GuestMemoryError(std::string("cannot size the memfd ") + name + " to " +
                           std::to_string(size) + " bytes: " + errno_text(errno));
  }
  return fd;
}

void add_memfd_seals(int fd, int seals, const char* what) {
  if (fcntl(fd, F_ADD_SEALS, seals) < 0) {
    throw GuestMemoryError(std::string("cannot seal ") + what + ": " + errno_text(errno));
  }
}

std::shared_ptr<const MemoryImage> MemoryImage::from_file(int fd, uint64_t size) {
  check_guest_memory_size(size);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) < 0) {
    throw SnapshotError("guest memory file: cannot stat descriptor " + std::to_string(fd) + ": " +
                        errno_text(fd < 0 ? EBADF : errno));
  }
  if (!S_ISREG(st.st_mode)) throw SnapshotError("guest memory file: not a regular file or memfd");
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) < size) {
    throw SnapshotError("guest memory file: " + std::to_string(st.st_size) +
                        " bytes, shorter than the " + std::to_string(size) +
                        " bytes of guest RAM it must hold");
  }
  // Our own descriptor, so the image does not depend on what the caller does with `fd`.
  auto own = std::make_shared<Fd>(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!*own) throw GuestMemoryError(std::string("dup guest memory file: ") + errno_text(errno));
  return std::make_shared<const MemoryImage>(std::move(own), size,
                                             std::vector<std::shared_ptr<const Layer>>{});
}

std::shared_ptr<const MemoryImage> MemoryImage::with_layer(std::vector<Extent> pages,
                                                           const ReadFn& read) const {
  check_extents(pages, size_);
  std::vector<Extent> joined = coalesce(pages, kCoalesceGap);
  std::vector<std::shared_ptr<const Layer>> layers = layers_;
  if (layers.size() + 1 > kMaxLayers || extent_count() + joined.size() > kMaxExtents) {
    // Merge: one layer with everything any layer held plus the new pages, read from the view
    // (which shows exactly that content). Still no copy of the base.
    std::vector<Extent> all = joined;
    for (const auto& l : layers_) all.insert(all.end(), l->extents.begin(), l->extents.end());
    const std::vector<Extent> merged = unite_extents(std::move(all));
    // Huge RAM written all over could still leave too many extents: widen the gap until they
    // fit (copying more of the unchanged pages in between).
    uint64_t gap = kCoalesceGap;
    joined = coalesce(merged, gap);
    while (joined.size() > kMaxExtents) {
      gap *= 2;
      joined = coalesce(merged, gap);
    }
    layers.clear();
  }
  if (!joined.empty()) layers.push_back(make_layer(size_, std::move(joined), read));
  return std::make_shared<const MemoryImage>(base_, size_, std::move(layers));
}

uint64_t MemoryImage::overlay_bytes() const noexcept {
  uint64_t n = 0;
  for (const auto& l : layers_) n += l->bytes;
  return n;
}

size_t MemoryImage::extent_count() const noexcept {
  size_t n = 0;
  for (const auto& l : layers_) n += l->extents.size();
  return n;
}

std::vector<MemoryImage::Extent> unite_extents(std::vector<MemoryImage::Extent> all) {
  using Extent = MemoryImage::Extent;
  std::sort(all.begin(), all.end(),
            [](const Extent& a, const Extent& b) { return a.offset < b.offset; });
  std::vector<Extent> out;
  for (const Extent& e : all) {
    if (e.length == 0) continue;
    if (!out.empty() && e.offset <= out.back().offset + out.back().length) {
      out.back().length = std::max(out.back().offset + out.back().length, e.offset + e.length) -
                          out.back().offset;
    } else {
      out.push_back(e);
    }
  }
  return out;
}

}  // namespace forkvm
