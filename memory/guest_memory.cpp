#include "memory/guest_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "base/text.hpp"
#include "forkvm/errors.hpp"
#include "memory/layout.hpp"

namespace forkvm {
namespace {

// Booted RAM and shells' reservations start on a 2 MiB boundary (reserve_aligned), replaced in
// place with MAP_FIXED: a huge page (anonymous THP, or a memfd's shmem huge page) can then back
// the whole region, and KVM can map it as one because guest-physical and host addresses agree
// modulo 2 MiB (the regions start at GPA 0 and 4 GiB).
uint8_t* map_anonymous(uint64_t size) {
  uint8_t* at = reserve_aligned(size);
  void* p = mmap(at, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    munmap(at, size);
    throw GuestMemoryError("cannot map " + std::to_string(size >> 20) +
                           " MiB of guest memory: " + errno_text(err));
  }
  return static_cast<uint8_t*>(p);
}

uint8_t* map_shared_file(uint64_t size, int fd, uint64_t offset) {
  uint8_t* at = reserve_aligned(size);
  void* p = mmap(at, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
                 static_cast<off_t>(offset));
  if (p == MAP_FAILED) {
    const int err = errno;
    munmap(at, size);
    throw GuestMemoryError(std::string("cannot map ") + std::to_string(size >> 20) +
                           " MiB of guest memory (shared memfd) at file offset " + hex(offset) +
                           ": " + errno_text(err));
  }
  return static_cast<uint8_t*>(p);
}

}  // namespace

GuestMemory GuestMemory::map_regions(uint64_t size,
                                     const std::function<uint8_t*(uint64_t, uint64_t)>& map) {
  const uint64_t low = std::min(size, layout::kMmioHoleStart);
  GuestMemory mem({}, 0);
  // Build incrementally so that a failure on the second mapping unmaps the first. The file
  // offsets follow the layout in the header: regions back to back in GPA order.
  mem.regions_.push_back({0, low, map(low, uint64_t{0}), 0});
  mem.total_ = low;
  if (size > low) {
    const uint64_t high = size - low;
    mem.regions_.push_back({layout::kMmioHoleEnd, high, map(high, low), low});
    mem.total_ += high;
  }
  return mem;
}

GuestMemory GuestMemory::create_anonymous(uint64_t size) {
  check_guest_memory_size(size);
  return map_regions(size, [](uint64_t len, uint64_t) { return map_anonymous(len); });
}

GuestMemory GuestMemory::reserve(uint64_t size) {
  check_guest_memory_size(size);
  GuestMemory mem = map_regions(size, [](uint64_t len, uint64_t) { return reserve_aligned(len); });
  mem.backing_ = Backing::kReserved;
  return mem;
}

GuestMemory GuestMemory::create_memfd(uint64_t size, bool huge_pages) {
  check_guest_memory_size(size);
  Fd fd = create_sized_memfd("forkvm-guest-ram", size);
  // The size is final: sealing it means no holder of the memfd can truncate it under a mapping
  // (which would turn guest accesses into SIGBUS in this process). Not F_SEAL_SEAL yet: freeze()
  // adds F_SEAL_WRITE when the memfd becomes an image's base.
  add_memfd_seals(fd.get(), F_SEAL_SHRINK | F_SEAL_GROW, "the guest memfd");
  const int raw = fd.get();
  GuestMemory mem = map_regions(size, [raw](uint64_t len, uint64_t offset) {
    return map_shared_file(len, raw, offset);
  });
  mem.backing_ = Backing::kSharedFile;
  mem.fd_ = std::move(fd);
  if (huge_pages) {
    // Before any page exists, so the first touch allocates huge ones. The host may refuse
    // (a kernel without THP: EINVAL) or accept and still never give any (shmem_enabled
    // "never", fragmented memory): neither is an error, the RAM just keeps 4 KiB pages, and
    // huge_page_advice()/huge_page_usage() tell what happened.
    mem.huge_advice_.asked = true;
    mem.huge_advice_.accepted = true;
    for (const Region& r : mem.regions_) {
      const HugePageAdvice a = advise_huge_pages(r.host, r.size);
      if (!a.accepted) mem.huge_advice_ = a;
    }
  }
  return mem;
}

GuestMemory GuestMemory::map_private(int fd, uint64_t size) {
  return map_image(MemoryImage::from_file(fd, size));
}

GuestMemory::GuestMemory(std::vector<Region> regions, uint64_t total)
    : regions_(std::move(regions)), total_(total) {}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept
    : regions_(std::exchange(other.regions_, {})),
      total_(std::exchange(other.total_, 0)),
      backing_(std::exchange(other.backing_, Backing::kAnonymous)),
      fd_(std::move(other.fd_)),
      image_(std::move(other.image_)),
      remap_failed_(std::exchange(other.remap_failed_, false)),
      huge_advice_(std::exchange(other.huge_advice_, {})),
      write_log_(std::move(other.write_log_)) {}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
  if (this != &other) {
    release();
    regions_ = std::exchange(other.regions_, {});
    total_ = std::exchange(other.total_, 0);
    backing_ = std::exchange(other.backing_, Backing::kAnonymous);
    fd_ = std::move(other.fd_);
    image_ = std::move(other.image_);
    remap_failed_ = std::exchange(other.remap_failed_, false);
    huge_advice_ = std::exchange(other.huge_advice_, {});
    write_log_ = std::move(other.write_log_);
  }
  return *this;
}

GuestMemory::~GuestMemory() { release(); }

void GuestMemory::release() noexcept {
  for (const Region& r : regions_) munmap(r.host, r.size);
  regions_.clear();
  total_ = 0;
  backing_ = Backing::kAnonymous;
  fd_.reset();  // after munmap; the mappings would keep the file alive anyway
  image_.reset();
  huge_advice_ = {};
  write_log_.reset();
}

HugePageUsage GuestMemory::huge_page_usage() const {
  std::vector<HostRange> ranges;
  for (const Region& r : regions_) {
    const auto begin = reinterpret_cast<uintptr_t>(r.host);
    ranges.push_back({begin, begin + r.size});
  }
  return forkvm::huge_page_usage(ranges);
}

std::optional<GuestMemory::Located> GuestMemory::locate(uint64_t gpa, uint64_t len) const noexcept {
  for (size_t i = 0; i < regions_.size(); ++i) {
    const Region& r = regions_[i];
    // Written as subtractions so that no sum can overflow: gpa >= r.gpa, then
    // offset = gpa - r.gpa < r.size, then len <= r.size - offset.
    if (gpa < r.gpa) continue;
    const uint64_t offset = gpa - r.gpa;
    if (offset >= r.size && !(offset == r.size && len == 0)) continue;
    if (len > r.size - offset) return std::nullopt;
    return Located{i, offset, r.host + offset};
  }
  return std::nullopt;
}

std::optional<std::span<const uint8_t>> GuestMemory::try_slice(uint64_t gpa,
                                                               uint64_t len) const noexcept {
  const auto at = locate(gpa, len);
  if (!at) return std::nullopt;
  return std::span<const uint8_t>(at->host, len);
}

std::optional<std::span<uint8_t>> GuestMemory::try_slice_for_write(uint64_t gpa,
                                                                   uint64_t len) const noexcept {
  const auto at = locate(gpa, len);
  if (!at) return std::nullopt;
  // Marked before the caller writes: a freeze() runs with every writer stopped, so it never
  // sees the mark without the write.
  if (write_log_) write_log_->mark(at->region, at->offset, len);
  return std::span<uint8_t>(at->host, len);
}

namespace {
// Whether `p` may be used by atomic_ref<uint16_t> (regions are page-aligned on both sides, so an
// even gpa is an even host address; checked anyway).
bool u16_aligned(const uint8_t* p) noexcept {
  return reinterpret_cast<uintptr_t>(p) % std::atomic_ref<uint16_t>::required_alignment == 0;
}
}  // namespace

std::optional<uint16_t> GuestMemory::load_u16(uint64_t gpa, std::memory_order order) const noexcept {
  const auto at = locate(gpa, sizeof(uint16_t));
  if (!at || !u16_aligned(at->host)) return std::nullopt;
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(at->host)).load(order);
}

bool GuestMemory::store_u16(uint64_t gpa, uint16_t value, std::memory_order order) const noexcept {
  const auto at = locate(gpa, sizeof(uint16_t));
  if (!at || !u16_aligned(at->host)) return false;
  if (write_log_) write_log_->mark(at->region, at->offset, sizeof(uint16_t));
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(at->host)).store(value, order);
  return true;
}

namespace {
[[noreturn]] void throw_outside(uint64_t gpa, uint64_t len) {
  throw GuestMemoryError("guest memory access [" + hex(gpa) + ", +" + hex(len) +
                         ") is outside guest RAM");
}
}  // namespace

std::span<const uint8_t> GuestMemory::slice(uint64_t gpa, uint64_t len) const {
  if (auto s = try_slice(gpa, len)) return *s;
  throw_outside(gpa, len);
}

std::span<uint8_t> GuestMemory::slice_for_write(uint64_t gpa, uint64_t len) const {
  if (auto s = try_slice_for_write(gpa, len)) return *s;
  throw_outside(gpa, len);
}

void GuestMemory::write(uint64_t gpa, std::span<const uint8_t> data) const {
  auto dst = slice_for_write(gpa, data.size());
  if (!data.empty()) std::memcpy(dst.data(), data.data(), data.size());
}

void GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
  auto src = slice(gpa, out.size());
  if (!out.empty()) std::memcpy(out.data(), src.data(), out.size());
}

void GuestMemory::start_write_log() {
  std::vector<uint64_t> sizes;
  for (const Region& r : regions_) sizes.push_back(r.size);
  write_log_ = std::make_unique<WriteLog>(sizes);
}

}  // namespace forkvm
