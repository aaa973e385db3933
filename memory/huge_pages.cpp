#include "memory/huge_pages.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <iterator>
#include <sstream>

#include "base/text.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {
namespace {

std::string read_sysfs_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return {};
  return line;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

/// Parses "<hex>-<hex> ..." (an smaps header line); false when the line is not one.
bool parse_vma_header(std::string_view line, HostRange& out) {
  const size_t dash = line.find('-');
  const size_t space = line.find(' ');
  if (dash == std::string_view::npos || space == std::string_view::npos || dash > space) return false;
  uintptr_t a = 0, b = 0;
  const auto ra = std::from_chars(line.data(), line.data() + dash, a, 16);
  const auto rb = std::from_chars(line.data() + dash + 1, line.data() + space, b, 16);
  if (ra.ec != std::errc{} || ra.ptr != line.data() + dash || rb.ec != std::errc{} ||
      rb.ptr != line.data() + space || b < a) {
    return false;
  }
  out = {a, b};
  return true;
}

/// The kB value of a field line "Name:   123 kB", in bytes; 0 when malformed.
uint64_t field_bytes(std::string_view rest) {
  rest = trim(rest);
  uint64_t kib = 0;
  const auto r = std::from_chars(rest.data(), rest.data() + rest.size(), kib);
  if (r.ec != std::errc{} || kib > (UINT64_MAX >> 10)) return 0;
  return kib << 10;
}

bool overlaps(const HostRange& vma, std::span<const HostRange> ranges) {
  for (const HostRange& r : ranges) {
    if (vma.begin < r.end && r.begin < vma.end) return true;
  }
  return false;
}

}  // namespace

std::string thp_selected(std::string_view line) {
  const size_t open = line.find('[');
  const size_t close = line.find(']', open == std::string_view::npos ? 0 : open);
  if (open == std::string_view::npos || close == std::string_view::npos) {
    return std::string(trim(line));
  }
  return std::string(line.substr(open + 1, close - open - 1));
}

ThpSettings read_thp_settings() {
  ThpSettings s;
  s.enabled = thp_selected(read_sysfs_line("/sys/kernel/mm/transparent_hugepage/enabled"));
  s.shmem_enabled = thp_selected(read_sysfs_line("/sys/kernel/mm/transparent_hugepage/shmem_enabled"));
  return s;
}

HugePageAdvice advise_huge_pages(void* addr, uint64_t len) {
  HugePageAdvice a;
  a.asked = true;
  if (madvise(addr, len, MADV_HUGEPAGE) == 0) {
    a.accepted = true;
  } else {
    a.error = "madvise(MADV_HUGEPAGE): " + errno_text(errno);
  }
  return a;
}

HugePageUsage parse_smaps_huge(std::string_view smaps, std::span<const HostRange> ranges) {
  HugePageUsage u;
  bool counting = false;
  while (!smaps.empty()) {
    const size_t nl = smaps.find('\n');
    const std::string_view line = smaps.substr(0, nl);
    smaps.remove_prefix(nl == std::string_view::npos ? smaps.size() : nl + 1);
    HostRange vma;
    if (parse_vma_header(line, vma)) {
      counting = overlaps(vma, ranges);
      continue;
    }
    if (!counting) continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, colon);
    const std::string_view rest = line.substr(colon + 1);
    if (name == "Rss") {
      u.rss_bytes += field_bytes(rest);
    } else if (name == "AnonHugePages") {
      u.anon_huge_bytes += field_bytes(rest);
    } else if (name == "ShmemPmdMapped" || name == "FilePmdMapped") {
      u.file_pmd_bytes += field_bytes(rest);
    }
  }
  return u;
}

HugePageUsage huge_page_usage(std::span<const HostRange> ranges) {
  std::ifstream in("/proc/self/smaps");
  if (!in) return {};
  std::ostringstream text;
  text << in.rdbuf();
  return parse_smaps_huge(text.str(), ranges);
}

uint8_t* reserve_aligned(uint64_t len) {
  // Over-reserve by one huge page, then give back the unaligned head and the tail.
  const uint64_t want = len + kHugePageSize;
  void* p = mmap(nullptr, want, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw GuestMemoryError("cannot reserve " + std::to_string(len >> 20) +
                           " MiB of address space for guest memory: " + errno_text(errno));
  }
  const auto base = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (base + kHugePageSize - 1) & ~(uintptr_t{kHugePageSize} - 1);
  if (aligned > base) munmap(p, aligned - base);
  const uintptr_t end = base + want;
  if (end > aligned + len) munmap(reinterpret_cast<void*>(aligned + len), end - (aligned + len));
  return reinterpret_cast<uint8_t*>(aligned);
}

}  // namespace forkvm
