#include "vmm/touched_memory.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "memory/memory_image.hpp"

namespace forkvm {
namespace {

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
using Extent = MemoryImage::Extent;

uint64_t sum_lengths(const Ranges& ranges) noexcept {
  uint64_t n = 0;
  for (const auto& [offset, length] : ranges) n += length;
  return n;
}

std::vector<Extent> united(const Ranges& a, const Ranges& b) {
  std::vector<Extent> all;
  all.reserve(a.size() + b.size());
  for (const Ranges* list : {&a, &b}) {
    for (const auto& [offset, length] : *list) all.push_back({offset, length});
  }
  return unite_extents(std::move(all));
}

/// `from` without the bytes of `cut`; both sorted and disjoint.
Ranges minus(const std::vector<Extent>& from, const std::vector<Extent>& cut) {
  Ranges out;
  size_t c = 0;
  for (const Extent& e : from) {
    uint64_t pos = e.offset;
    const uint64_t end = e.offset + e.length;
    while (c < cut.size() && cut[c].offset + cut[c].length <= pos) ++c;
    for (size_t k = c; k < cut.size() && cut[k].offset < end; ++k) {
      if (cut[k].offset > pos) out.emplace_back(pos, cut[k].offset - pos);
      pos = std::max(pos, cut[k].offset + cut[k].length);
    }
    if (pos < end) out.emplace_back(pos, end - pos);
  }
  return out;
}

}  // namespace

uint64_t TouchedMemory::written_bytes() const noexcept { return sum_lengths(written); }
uint64_t TouchedMemory::read_bytes() const noexcept { return sum_lengths(read); }

TouchedMemory united_touches(const TouchedMemory& a, const TouchedMemory& b) {
  const std::vector<Extent> written = united(a.written, b.written);
  TouchedMemory out;
  out.read = minus(united(a.read, b.read), written);
  out.written.reserve(written.size());
  for (const Extent& e : written) out.written.emplace_back(e.offset, e.length);
  return out;
}

}  // namespace forkvm
