#include "vmm/arch/x86_64/boot_params.hpp"

#include <algorithm>
#include <string>

#include "forkvm/errors.hpp"
#include "memory/layout.hpp"

namespace forkvm::x86 {
namespace {

void add_range(std::vector<E820Entry>& map, uint64_t start, uint64_t end, uint32_t type) {
  if (end > start) map.push_back(E820Entry{start, end - start, type});
}

SetupHeader synthesized_header() {
  SetupHeader hdr{};
  hdr.boot_flag = kBootFlagMagic;
  hdr.header = kHdrSMagic;
  hdr.kernel_alignment = kDefaultKernelAlignment;
  return hdr;
}

}  // namespace

std::vector<E820Entry> build_e820(std::span<const GuestMemory::Region> regions) {
  if (regions.empty() || regions.front().gpa != 0 ||
      regions.front().size <= layout::kHimemStart) {
    throw ConfigError("guest RAM must start at address 0 and extend past 1 MiB");
  }
  std::vector<E820Entry> map;
  add_range(map, 0, layout::kEbdaStart, kE820Ram);
  add_range(map, layout::kEbdaStart, layout::kEbdaReservedEnd, kE820Reserved);
  for (const GuestMemory::Region& r : regions) {
    // Below 1 MiB only [0, kEbdaStart) is RAM to the guest: the rest is the EBDA/MP-table
    // area and the legacy VGA/ROM window.
    const uint64_t start = std::max(r.gpa, layout::kHimemStart);
    add_range(map, start, r.gpa + r.size, kE820Ram);
  }
  return map;
}

BootParams build_boot_params(const ZeroPageConfig& config,
                             std::span<const GuestMemory::Region> regions) {
  const std::vector<E820Entry> e820 = build_e820(regions);
  if (e820.size() > kE820MaxEntries) {
    throw ConfigError("guest memory map has " + std::to_string(e820.size()) +
                      " ranges; the zero page holds " + std::to_string(kE820MaxEntries));
  }
  BootParams params{};  // all zero, sentinel included
  params.hdr = config.kernel_header.value_or(synthesized_header());
  params.hdr.type_of_loader = kLoaderTypeUndefined;
  params.hdr.loadflags = static_cast<uint8_t>(params.hdr.loadflags | kLoadedHigh | kCanUseHeap);
  params.hdr.heap_end_ptr = kHeapEndPtr;
  params.hdr.cmd_line_ptr = static_cast<uint32_t>(layout::kCmdlineStart);
  params.hdr.cmdline_size = config.cmdline_size;
  params.hdr.ramdisk_image = config.initrd_gpa;
  params.hdr.ramdisk_size = config.initrd_size;
  params.e820_entries = static_cast<uint8_t>(e820.size());
  std::copy(e820.begin(), e820.end(), params.e820_table.begin());
  return params;
}

void write_boot_params(const GuestMemory& mem, const BootParams& params) {
  mem.write_obj(layout::kZeroPageStart, params);
}

}  // namespace forkvm::x86
