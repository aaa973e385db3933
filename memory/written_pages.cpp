#include "memory/written_pages.hpp"

#include <algorithm>

#include "memory/layout.hpp"

namespace forkvm {

size_t bitmap_words(uint64_t bytes) noexcept {
  const uint64_t pages = (bytes + layout::kPageSize - 1) / layout::kPageSize;
  return static_cast<size_t>((pages + 63) / 64);
}

WriteLog::WriteLog(const std::vector<uint64_t>& region_bytes) {
  for (const uint64_t bytes : region_bytes) {
    const size_t n = bitmap_words(bytes);
    auto words = std::make_unique<std::atomic<uint64_t>[]>(n);
    for (size_t i = 0; i < n; ++i) words[i].store(0, std::memory_order_relaxed);
    words_.push_back(std::move(words));
    sizes_.push_back(n);
  }
}

void WriteLog::mark(size_t region, uint64_t offset, uint64_t len) noexcept {
  if (region >= words_.size() || len == 0) return;
  const uint64_t limit = uint64_t{sizes_[region]} * 64;
  uint64_t page = offset / layout::kPageSize;
  // `offset + len` cannot overflow: GuestMemory checked the range lies inside the region.
  const uint64_t end = std::min(limit, (offset + len - 1) / layout::kPageSize + 1);
  std::atomic<uint64_t>* words = words_[region].get();
  while (page < end) {
    const uint64_t word = page / 64;
    const uint64_t first = page % 64;
    const uint64_t count = std::min<uint64_t>(64 - first, end - page);
    const uint64_t bits = count == 64 ? ~uint64_t{0} : ((uint64_t{1} << count) - 1) << first;
    // Relaxed: freeze() reads the log with every writer stopped (devices quiesced), and that
    // stop is itself a synchronisation (a join or a mutex).
    if ((words[word].load(std::memory_order_relaxed) & bits) != bits) {
      words[word].fetch_or(bits, std::memory_order_relaxed);
    }
    page += count;
  }
}

PageBitmaps WriteLog::take() {
  // Every copy allocated before any bit is cleared: a std::bad_alloc loses nothing.
  PageBitmaps out;
  out.reserve(words_.size());
  for (size_t r = 0; r < words_.size(); ++r) out.emplace_back(sizes_[r]);
  for (size_t r = 0; r < words_.size(); ++r) {
    for (size_t i = 0; i < sizes_[r]; ++i) out[r][i] = words_[r][i].exchange(0, std::memory_order_relaxed);
  }
  return out;
}

void WriteLog::restore(const PageBitmaps& pages) noexcept {
  for (size_t r = 0; r < pages.size() && r < words_.size(); ++r) {
    for (size_t i = 0; i < pages[r].size() && i < sizes_[r]; ++i) {
      if (pages[r][i] != 0) words_[r][i].fetch_or(pages[r][i], std::memory_order_relaxed);
    }
  }
}

std::vector<MemoryImage::Extent> written_extents(const PageBitmaps& a, const PageBitmaps& b,
                                                 const std::vector<MemoryImage::Extent>& regions) {
  std::vector<MemoryImage::Extent> out;
  for (size_t r = 0; r < regions.size(); ++r) {
    const uint64_t pages = regions[r].length / layout::kPageSize;
    const size_t words = bitmap_words(regions[r].length);
    for (size_t w = 0; w < words; ++w) {
      uint64_t bits = 0;
      if (r < a.size() && w < a[r].size()) bits |= a[r][w];
      if (r < b.size() && w < b[r].size()) bits |= b[r][w];
      while (bits != 0) {
        const uint64_t page = uint64_t{w} * 64 + static_cast<uint64_t>(__builtin_ctzll(bits));
        bits &= bits - 1;
        if (page >= pages) break;  // bits past the region's end
        const uint64_t offset = regions[r].offset + page * layout::kPageSize;
        if (!out.empty() && out.back().offset + out.back().length == offset) {
          out.back().length += layout::kPageSize;
        } else {
          out.push_back({offset, layout::kPageSize});
        }
      }
    }
  }
  return out;
}

}  // namespace forkvm
