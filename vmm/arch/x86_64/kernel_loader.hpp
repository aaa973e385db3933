// Loading a Linux kernel, its initramfs and its command line into guest memory for the 64-bit
// boot protocol (Documentation/x86/boot.rst). Two kernel formats: a bzImage (boot.rst "The
// Real-Mode Kernel Header", "64-bit Boot Protocol") and an uncompressed ELF vmlinux (ELF-64
// Object File Format 1.5, PT_LOAD segments at their physical addresses). Every value read from
// a file is validated; problems with a file are ImageError, problems with the caller's input
// (the command line) are ConfigError.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vmm/arch/x86_64/boot_params.hpp"

namespace forkvm::x86 {

/// The kernel image formats load_kernel understands.
enum class KernelFormat { BzImage, Elf };

/// Protocol facts used below (boot.rst).
inline constexpr uint16_t kMinBootProtocol = 0x020c;  ///< 2.12: xloadflags with XLF_KERNEL_64
inline constexpr uint64_t kBzImage64BitEntryOffset = 0x200;  ///< "64-bit Boot Protocol"
/// initrd_addr_max for kernels that do not say (boot.rst, field initrd_addr_max).
inline constexpr uint32_t kDefaultInitrdAddrMax = 0x37ffffff;
/// x86 COMMAND_LINE_SIZE (arch/x86/include/asm/setup.h), including the NUL; the limit for a
/// vmlinux, which carries no cmdline_size.
inline constexpr uint32_t kElfCmdlineSize = 2048;
/// Command-line limit of protocols before 2.06 (boot.rst, field cmdline_size).
inline constexpr uint32_t kLegacyCmdlineMax = 255;

/// A kernel placed in guest memory.
struct LoadedKernel {
  KernelFormat format = KernelFormat::Elf;
  uint64_t entry = 0;  ///< guest-physical 64-bit entry point: the vCPUs' RIP
  uint64_t start = 0;  ///< lowest guest-physical byte the kernel occupies
  /// One past the highest byte the kernel needs before it reads the memory map: the image,
  /// its bss and, for a bzImage, init_size from the runtime start (boot.rst, field init_size).
  uint64_t end = 0;
  /// bzImage: the image's setup header (code32_start updated), to copy into the zero page.
  std::optional<SetupHeader> header;

  /// Highest guest-physical byte an initramfs may occupy (header initrd_addr_max, or
  /// kDefaultInitrdAddrMax without a header).
  uint64_t initrd_addr_max() const noexcept;
  /// Longest command line, without its NUL, the kernel accepts: cmdline_size from the header
  /// (protocol 2.06+), 255 before 2.06, COMMAND_LINE_SIZE - 1 for a vmlinux; never more than
  /// kCmdlineMaxSize - 1, the space forkvm reserves.
  uint64_t cmdline_max() const noexcept;
};

/// Loads the kernel at `path`: an ELF vmlinux if it starts with the ELF magic, a bzImage
/// otherwise. bzImage: protocol >= 2.12 with XLF_KERNEL_64, protected-mode part (from
/// (setup_sects + 1) * 512, setup_sects 0 meaning 4) copied to kHimemStart, entry = that
/// + 0x200. ELF: ELF64, little-endian, x86-64, ET_EXEC; each PT_LOAD copied to p_paddr
/// (>= kHimemStart) with its bss zeroed; entry = e_entry, which for x86-64 vmlinux is the
/// physical address of startup_64 (vmlinux.lds.S: ENTRY(phys_startup_64)); a virtual e_entry
/// is translated through the PT_LOAD that contains it. Throws ImageError when the file is
/// missing, unreadable, truncated, not a kernel, too old, or does not fit in guest RAM.
LoadedKernel load_kernel(const GuestMemory& mem, const std::string& path);

/// An initramfs placed in guest memory.
struct LoadedInitrd {
  uint64_t gpa = 0;
  uint64_t size = 0;
};

/// Loads the initramfs at `path` page-aligned as high as possible in the RAM region at 0, such
/// that it ends at or below kernel.initrd_addr_max() and starts at or above kernel.end
/// (boot.rst "Loading the rest of the kernel"). Throws ImageError if the file is missing,
/// empty or does not fit.
LoadedInitrd load_initrd(const GuestMemory& mem, const std::string& path,
                         const LoadedKernel& kernel);

/// Writes `cmdline` and a NUL at kCmdlineStart and returns the bytes written (with the NUL).
/// Throws ConfigError if it contains a NUL or is longer than kernel.cmdline_max().
uint32_t write_cmdline(const GuestMemory& mem, std::string_view cmdline,
                       const LoadedKernel& kernel);

}  // namespace forkvm::x86
