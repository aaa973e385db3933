// GuestMemory over a MemoryImage: mapping an image copy-on-write, freezing RAM into an image
// (re-mapping it in place), and reading /proc/self/pagemap to find the pages a mapping has
// made private.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
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
using LayerList = std::vector<std::shared_ptr<const MemoryImage::Layer>>;

constexpr int kProt = PROT_READ | PROT_WRITE;
// MAP_NORESERVE: copies are made page by page as the guest writes; reserving swap for the
// whole of RAM per VM would make many forks fail long before they use their memory.
constexpr int kPrivate = MAP_PRIVATE | MAP_NORESERVE;

// /proc/self/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
constexpr uint64_t kPagePresent = 1ull << 63;
constexpr uint64_t kPageSwapped = 1ull << 62;
constexpr uint64_t kPageFileOrShared = 1ull << 61;


/// Maps `len` bytes of `fd` at `offset` copy-on-write; at `fixed` (replacing what is there)
/// unless it is null.
uint8_t* map_cow(uint8_t* fixed, uint64_t len, int fd, uint64_t offset, const char* what) {
  void* p = mmap(fixed, len, kProt, kPrivate | (fixed != nullptr ? MAP_FIXED : 0), fd,
                 static_cast<off_t>(offset));
  if (p == MAP_FAILED) {
    throw GuestMemoryError(std::string("cannot map ") + what + " (" + std::to_string(len) +
                           " bytes at file offset " + std::to_string(offset) +
                           ") copy-on-write: " + errno_text(errno));
  }
  return static_cast<uint8_t*>(p);
}

/// The part [first, end) of extent `e` (memory-file offsets) that lies in [file_offset,
/// file_offset + size); first >= end when none does. An extent's end saturates instead of
/// wrapping, so a caller's extent near 2^64 clips to nothing rather than to a wrong range.
struct Overlap {
  uint64_t first;
  uint64_t end;
};
Overlap overlap(const Extent& e, uint64_t file_offset, uint64_t size) {
  const uint64_t extent_end =
      e.length > UINT64_MAX - e.offset ? UINT64_MAX : e.offset + e.length;
  return {std::max(e.offset, file_offset), std::min(extent_end, file_offset + size)};
}

/// Maps the extents of `layers` (in order: a higher layer replaces a lower one) that fall in
/// the region [file_offset, file_offset + size) over the region's host range.
void map_layers(const LayerList& layers, uint8_t* host, uint64_t file_offset, uint64_t size) {
  for (const auto& layer : layers) {
    for (const Extent& e : layer->extents) {
      const auto [a, b] = overlap(e, file_offset, size);
      if (a >= b) continue;
      map_cow(host + (a - file_offset), b - a, layer->fd.get(), a, "a memory layer");
    }
  }
}

/// Calls on_page(file_offset, pagemap_entry) for every page of `regions`, in order.
template <typename OnPage>
void scan_pagemap(const std::vector<GuestMemory::Region>& regions, OnPage on_page) {
  Fd pm(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!pm) throw GuestMemoryError("cannot open /proc/self/pagemap: " + errno_text(errno));
  constexpr uint64_t kChunk = 16384;  // entries per read: 128 KiB of pagemap, 64 MiB of RAM
  std::vector<uint64_t> entries(kChunk);
  for (const GuestMemory::Region& r : regions) {
    const uint64_t first = reinterpret_cast<uintptr_t>(r.host) / layout::kPageSize;
    const uint64_t pages = r.size / layout::kPageSize;
    for (uint64_t done = 0; done < pages;) {
      const uint64_t n = std::min(kChunk, pages - done);
      const auto want = static_cast<ssize_t>(n * sizeof(uint64_t));
      const ssize_t got = pread(pm.get(), entries.data(), static_cast<size_t>(want),
                                static_cast<off_t>((first + done) * sizeof(uint64_t)));
      if (got != want) {
        throw GuestMemoryError("cannot read /proc/self/pagemap: " +
                               (got < 0 ? errno_text(errno) : "short read"));
      }
      for (uint64_t i = 0; i < n; ++i) {
        on_page(r.file_offset + (done + i) * layout::kPageSize, entries[i]);
      }
      done += n;
    }
  }
}

/// A page this mapping owns: an anonymous page (a copy-on-write copy, or anonymous RAM), in
/// RAM or swapped out. File pages that were only read are the image's, shared.
bool is_private(uint64_t entry) {
  return ((entry & kPagePresent) != 0 && (entry & kPageFileOrShared) == 0) ||
         (entry & kPageSwapped) != 0;
}

}  // namespace

GuestMemory GuestMemory::map_image(std::shared_ptr<const MemoryImage> image) {
  if (!image) throw ConfigError("GuestMemory::map_image: no image");
  const MemoryImage& img = *image;
  GuestMemory mem = map_regions(img.size(), [&img](uint64_t len, uint64_t offset) {
    uint8_t* host = map_cow(nullptr, len, img.base_fd(), offset, "the memory image's base");
    try {
      map_layers(img.layers(), host, offset, len);
    } catch (...) {
      munmap(host, len);
      throw;
    }
    return host;
  });
  mem.backing_ = Backing::kPrivateFile;
  mem.image_ = std::move(image);
  return mem;
}

void GuestMemory::map_image_over(std::shared_ptr<const MemoryImage> image) {
  if (!image) throw ConfigError("GuestMemory::map_image_over: no image");
  if (backing_ != Backing::kReserved) {
    throw ConfigError("GuestMemory::map_image_over: the RAM is not a reservation");
  }
  if (image->size() != total_) {
    throw ConfigError("GuestMemory::map_image_over: an image of " + std::to_string(image->size()) +
                      " bytes for " + std::to_string(total_) + " bytes of RAM");
  }
  // Each MAP_FIXED mmap replaces its part of the reservation atomically; a failure part way
  // leaves some of it PROT_NONE, and the caller discards this RAM.
  for (const Region& r : regions_) {
    map_cow(r.host, r.size, image->base_fd(), r.file_offset, "the memory image's base");
    map_layers(image->layers(), r.host, r.file_offset, r.size);
  }
  backing_ = Backing::kPrivateFile;
  image_ = std::move(image);
}

namespace {

/// Appends the page at `offset` to `extents`, growing the last extent when it is adjacent.
void add_page(std::vector<MemoryImage::Extent>& extents, uint64_t offset) {
  if (!extents.empty() && extents.back().offset + extents.back().length == offset) {
    extents.back().length += layout::kPageSize;
  } else {
    extents.push_back({offset, layout::kPageSize});
  }
}

}  // namespace

std::vector<MemoryImage::Extent> GuestMemory::private_extents() const {
  std::vector<Extent> out;
  // Every page of a memfd lives in the memfd; a reservation has none.
  if (backing_ == Backing::kSharedFile || backing_ == Backing::kReserved) return out;
  scan_pagemap(regions_, [&out](uint64_t offset, uint64_t entry) {
    if (is_private(entry)) add_page(out, offset);
  });
  return out;
}

namespace {

// MADV_POPULATE_READ/WRITE (Linux 5.14, include/uapi/asm-generic/mman-common.h), spelled out for
// older headers.
constexpr int kPopulateRead = 22;
constexpr int kPopulateWrite = 23;

}  // namespace

GuestMemory::Touched GuestMemory::touched_extents() const {
  Touched out;
  scan_pagemap(regions_, [&out](uint64_t offset, uint64_t entry) {
    if (is_private(entry)) {
      add_page(out.written, offset);
    } else if ((entry & kPagePresent) != 0) {
      add_page(out.read, offset);
    }
  });
  return out;
}

bool GuestMemory::for_each_piece(const std::vector<Extent>& extents,
                                 const std::function<bool(const ExtentPiece&)>& fn) const {
  for (const Extent& e : extents) {
    for (const Region& r : regions_) {
      const auto [a, b] = overlap(e, r.file_offset, r.size);
      if (a >= b) continue;
      if (!fn({r.gpa + (a - r.file_offset), r.host + (a - r.file_offset), a, b - a})) return false;
    }
  }
  return true;
}

uint64_t GuestMemory::prefault(const Touched& touched) const {
  if (backing_ != Backing::kPrivateFile) return 0;
  uint64_t done = 0;
  auto populate = [&](const std::vector<Extent>& extents, int advice) {
    return for_each_piece(extents, [&](const ExtentPiece& p) {
      if (madvise(p.host, p.length, advice) != 0) {
        if (errno == EINVAL) return false;  // a kernel without MADV_POPULATE_*
        throw GuestMemoryError("cannot prefault guest memory (" + std::to_string(p.length) +
                               " bytes at memory-file offset " + std::to_string(p.file_offset) +
                               "): " + errno_text(errno));
      }
      done += p.length;
      return true;
    });
  };
  if (!populate(touched.written, kPopulateWrite)) return 0;
  populate(touched.read, kPopulateRead);
  return done;
}

GuestMemory::Usage GuestMemory::usage() const {
  Usage u;
  scan_pagemap(regions_, [&u](uint64_t, uint64_t entry) {
    if (is_private(entry)) {
      u.private_bytes += layout::kPageSize;
    } else if ((entry & kPagePresent) != 0) {
      u.shared_bytes += layout::kPageSize;
    }
  });
  return u;
}

std::shared_ptr<const MemoryImage> GuestMemory::freeze(const PageBitmaps* guest_written) {
  // Reads this RAM at memory-file offsets (an extent may cross from one region to the next:
  // they are back to back in the file layout).
  const MemoryImage::ReadFn read_view = [this](uint64_t offset, uint8_t* dst, uint64_t len) {
    while (len > 0) {
      const Region* r = nullptr;
      for (const Region& c : regions_) {
        if (offset >= c.file_offset && offset - c.file_offset < c.size) r = &c;
      }
      if (r == nullptr) throw GuestMemoryError("freeze: file offset " + std::to_string(offset) +
                                               " is outside guest RAM");
      const uint64_t in_region = offset - r->file_offset;
      const uint64_t n = std::min(len, r->size - in_region);
      std::memcpy(dst, r->host + in_region, n);
      dst += n;
      offset += n;
      len -= n;
    }
  };

  std::shared_ptr<const MemoryImage> next;
  bool only_new_layer = false;  // re-map just the new layer's extents
  bool logged = false;          // the written pages came from the logs
  switch (backing_) {
    case Backing::kSharedFile:
      // Nothing to copy: the memfd holds every page. Once re-mapped below nobody maps it
      // shared, so it no longer changes.
      next = MemoryImage::from_file(fd_.get(), total_);
      break;
    case Backing::kPrivateFile: {
      // The pages written since this RAM was mapped or last frozen: from the logs when both
      // writers kept one, else from a pagemap scan.
      logged = guest_written != nullptr && write_log_ != nullptr;
      PageBitmaps host_written;
      try {
        next = image_->with_layer(
            logged ? written_since_freeze(*guest_written, host_written) : private_extents(),
            read_view);
      } catch (...) {
        // Nothing changed but the logs, which were taken: KVM's dirty log is cleared by reading
        // it, so its pages go into the write log with the log's own, for the next freeze.
        if (logged) {
          write_log_->restore(*guest_written);
          write_log_->restore(host_written);
        }
        throw;
      }
      const auto& old_layers = image_->layers();
      const auto& new_layers = next->layers();
      only_new_layer = new_layers.size() == old_layers.size() + 1 &&
                       std::equal(old_layers.begin(), old_layers.end(), new_layers.begin());
      if (new_layers == old_layers) {  // nothing was written: the image is unchanged
        image_ = next;
        last_freeze_logged_ = logged;
        return next;
      }
      break;
    }
    case Backing::kReserved:
      throw GuestMemoryError("freeze: the RAM is a reservation with no image in it");
    case Backing::kAnonymous: {
      // An empty (all-zero, sparse) base and one layer with every page ever touched.
      Fd zero = create_sized_memfd("forkvm-guest-ram", total_);
      add_memfd_seals(zero.get(), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL,
                      "the zero memfd");
      next = MemoryImage::from_file(zero.get(), total_)->with_layer(private_extents(), read_view);
      break;
    }
  }

  // Re-map in place. Each MAP_FIXED mmap replaces its range atomically, and the content seen
  // through it is the same as before, so a failure part way leaves RAM whose pages are all
  // correct but partly still the old mapping; only a failure of the first call for a region
  // can leave it unmapped. Either way the VM must not continue: say so.
  try {
    for (const Region& r : regions_) {
      if (only_new_layer) {
        map_layers({next->layers().back()}, r.host, r.file_offset, r.size);
      } else {
        map_cow(r.host, r.size, next->base_fd(), r.file_offset, "the frozen RAM");
        map_layers(next->layers(), r.host, r.file_offset, r.size);
      }
    }
  } catch (const GuestMemoryError& e) {
    remap_failed_ = true;
    throw GuestMemoryError(std::string("freeze: re-mapping guest RAM failed part way (the VM "
                                       "cannot continue): ") + e.what());
  }
  backing_ = Backing::kPrivateFile;
  image_ = next;
  last_freeze_logged_ = logged;
  if (fd_) {
    // The memfd is now an image's base: immutable from here on, and the kernel enforces it.
    // F_SEAL_WRITE refuses (EBUSY) while any shared mapping of it is left, so it also proves
    // the re-map above replaced every one; after it, a write through any descriptor or a new
    // shared mapping fails at the writer instead of changing what the children read.
    const Fd base = std::move(fd_);
    try {
      add_memfd_seals(base.get(), F_SEAL_WRITE | F_SEAL_SEAL, "the frozen RAM");
    } catch (const GuestMemoryError& e) {
      throw GuestMemoryError(std::string("freeze: the frozen RAM is still mapped shared "
                                         "somewhere, so the image could change under its "
                                         "children: ") + e.what());
    }
  }
  return next;
}

}  // namespace forkvm
