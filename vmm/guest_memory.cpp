#include "vmm/guest_memory.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "forkvm/errors.hpp"
#include "vmm/arch/x86_64/layout.hpp"

namespace forkvm {
namespace {

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

uint8_t* map_anonymous(uint64_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw GuestMemoryError("cannot map " + std::to_string(size >> 20) +
                           " MiB of guest memory: " + std::strerror(errno));
  }
  return static_cast<uint8_t*>(p);
}

}  // namespace

GuestMemory GuestMemory::create_anonymous(uint64_t size) {
  if (size == 0 || size % layout::kPageSize != 0) {
    throw ConfigError("guest memory size " + std::to_string(size) +
                      " is not a non-zero multiple of 4096");
  }
  const uint64_t low = std::min(size, layout::kMmioHoleStart);
  GuestMemory mem({}, 0);
  // Build incrementally so that a failure on the second mapping unmaps the first.
  mem.regions_.push_back({0, low, map_anonymous(low)});
  mem.total_ = low;
  if (size > low) {
    const uint64_t high = size - low;
    mem.regions_.push_back({layout::kMmioHoleEnd, high, map_anonymous(high)});
    mem.total_ += high;
  }
  return mem;
}

GuestMemory::GuestMemory(std::vector<Region> regions, uint64_t total)
    : regions_(std::move(regions)), total_(total) {}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept
    : regions_(std::exchange(other.regions_, {})), total_(std::exchange(other.total_, 0)) {}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
  if (this != &other) {
    release();
    regions_ = std::exchange(other.regions_, {});
    total_ = std::exchange(other.total_, 0);
  }
  return *this;
}

GuestMemory::~GuestMemory() { release(); }

void GuestMemory::release() noexcept {
  for (const Region& r : regions_) munmap(r.host, r.size);
  regions_.clear();
  total_ = 0;
}

std::optional<std::span<uint8_t>> GuestMemory::try_slice(uint64_t gpa,
                                                         uint64_t len) const noexcept {
  for (const Region& r : regions_) {
    // Written as subtractions so that no sum can overflow: gpa >= r.gpa, then
    // offset = gpa - r.gpa < r.size, then len <= r.size - offset.
    if (gpa < r.gpa) continue;
    const uint64_t offset = gpa - r.gpa;
    if (offset >= r.size && !(offset == r.size && len == 0)) continue;
    if (len > r.size - offset) return std::nullopt;
    return std::span<uint8_t>(r.host + offset, len);
  }
  return std::nullopt;
}

std::span<uint8_t> GuestMemory::slice(uint64_t gpa, uint64_t len) const {
  if (auto s = try_slice(gpa, len)) return *s;
  throw GuestMemoryError("guest memory access [" + hex(gpa) + ", +" + hex(len) +
                         ") is outside guest RAM");
}

void GuestMemory::write(uint64_t gpa, std::span<const uint8_t> data) const {
  auto dst = slice(gpa, data.size());
  if (!data.empty()) std::memcpy(dst.data(), data.data(), data.size());
}

void GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
  auto src = slice(gpa, out.size());
  if (!out.empty()) std::memcpy(out.data(), src.data(), out.size());
}

}  // namespace forkvm
