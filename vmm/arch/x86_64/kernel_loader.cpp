#include "vmm/arch/x86_64/kernel_loader.hpp"

#include <algorithm>
#include <cstring>

#include "forkvm/errors.hpp"
#include "memory/layout.hpp"
#include "vmm/arch/x86_64/kernel_formats.hpp"

namespace forkvm::x86 {
namespace {

/// Smallest file that can hold a full bzImage setup header.
constexpr uint64_t kMinBzImageSize = kSetupHeaderOffset + sizeof(SetupHeader);

}  // namespace

const GuestMemory::Region& low_region(const GuestMemory& mem) {
  const auto& regions = mem.regions();
  if (regions.empty() || regions.front().gpa != 0 ||
      regions.front().size <= layout::kHimemStart) {
    throw ConfigError("guest RAM must start at address 0 and extend past 1 MiB");
  }
  return regions.front();
}

uint64_t LoadedKernel::initrd_addr_max() const noexcept {
  // boot.rst: initrd_addr_max is 2.03+, so every header we accept (2.12+) has it.
  return header ? header->initrd_addr_max : kDefaultInitrdAddrMax;
}

uint64_t LoadedKernel::cmdline_max() const noexcept {
  uint64_t limit = kElfCmdlineSize - 1;
  if (header) limit = header->version >= 0x0206 ? header->cmdline_size : kLegacyCmdlineMax;
  return std::min<uint64_t>(limit, layout::kCmdlineMaxSize - 1);
}

LoadedKernel load_kernel(const GuestMemory& mem, const std::string& path) {
  const ImageFile file(path);
  uint8_t magic[4] = {};
  if (file.size() >= sizeof magic) file.read_exact(0, magic);
  if (std::memcmp(magic, "\x7f" "ELF", sizeof magic) == 0) return load_elf_kernel(mem, file);
  if (file.size() < kMinBzImageSize) {
    throw ImageError(path, "not a kernel: no ELF magic, and " + std::to_string(file.size()) +
                               " bytes is too small for a bzImage setup header");
  }
  return load_bzimage(mem, file);
}

LoadedInitrd load_initrd(const GuestMemory& mem, const std::string& path,
                         const LoadedKernel& kernel) {
  const ImageFile file(path);
  const uint64_t size = file.size();
  if (size == 0) throw ImageError(path, "initramfs is empty");

  const GuestMemory::Region& low = low_region(mem);
  // initrd_addr_max is the highest byte allowed, hence + 1 for the exclusive end.
  const uint64_t top = std::min(low.gpa + low.size, kernel.initrd_addr_max() + 1);
  const uint64_t bottom = (kernel.end + layout::kPageSize - 1) & ~(layout::kPageSize - 1);
  if (top < bottom || size > top - bottom) {
    throw ImageError(path, "initramfs (" + std::to_string(size) + " bytes) does not fit between "
                               "the kernel's end " + hex(bottom) + " and " + hex(top) +
                               " (end of low RAM or the kernel's initrd_addr_max)");
  }
  const uint64_t gpa = (top - size) & ~(layout::kPageSize - 1);
  file.read_exact(0, mem.slice_for_write(gpa, size));
  return LoadedInitrd{gpa, size};
}

uint32_t write_cmdline(const GuestMemory& mem, std::string_view cmdline,
                       const LoadedKernel& kernel) {
  if (cmdline.find('\0') != std::string_view::npos) {
    throw ConfigError("kernel command line contains a NUL byte");
  }
  if (cmdline.size() > kernel.cmdline_max()) {
    throw ConfigError("kernel command line is " + std::to_string(cmdline.size()) +
                      " bytes; this kernel accepts at most " +
                      std::to_string(kernel.cmdline_max()));
  }
  const std::span<uint8_t> dst = mem.slice_for_write(layout::kCmdlineStart, cmdline.size() + 1);
  std::memcpy(dst.data(), cmdline.data(), cmdline.size());
  dst[cmdline.size()] = 0;
  return static_cast<uint32_t>(cmdline.size() + 1);
}

}  // namespace forkvm::x86
