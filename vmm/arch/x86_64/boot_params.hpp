// The zero page: Linux's struct boot_params with its struct setup_header, as defined by
// arch/x86/include/uapi/asm/bootparam.h and documented in Documentation/x86/boot.rst
// ("The Real-Mode Kernel Header", "64-bit Boot Protocol") and Documentation/x86/zero-page.rst.
// The structs mirror the kernel's byte for byte; static_asserts pin every offset used.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "memory/guest_memory.hpp"

namespace forkvm::x86 {

/// "HdrS", the setup header magic (boot.rst, field `header` at 0x202).
inline constexpr uint32_t kHdrSMagic = 0x53726448;
/// boot_flag value at 0x1fe (boot.rst, field `boot_flag`).
inline constexpr uint16_t kBootFlagMagic = 0xaa55;
/// type_of_loader for a loader without an assigned ID (boot.rst, field `type_of_loader`).
inline constexpr uint8_t kLoaderTypeUndefined = 0xff;
/// loadflags bits (boot.rst, field `loadflags`).
inline constexpr uint8_t kLoadedHigh = 1u << 0;
inline constexpr uint8_t kCanUseHeap = 1u << 7;
/// xloadflags bit: the kernel has the 64-bit entry point at load address + 0x200.
inline constexpr uint16_t kXlfKernel64 = 1u << 0;
/// Alignment given to kernels without a setup header (ELF vmlinux), as Firecracker does.
inline constexpr uint32_t kDefaultKernelAlignment = 16 << 20;
/// heap_end_ptr the real-mode setup code would use (boot.rst "Loading the rest of the
/// kernel": 0xfe00 = end of the 64 KiB setup segment minus 0x200).
inline constexpr uint16_t kHeapEndPtr = 0xfe00;

/// E820 entry types (ACPI 6.x §15 "System Address Map Interfaces", Table 15.312).
inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;
/// Capacity of boot_params.e820_table (E820_MAX_ENTRIES_ZEROPAGE).
inline constexpr size_t kE820MaxEntries = 128;

/// struct setup_header (bootparam.h), found at 0x1f1 in both a bzImage and the zero page.
/// Field meanings and the protocol version that introduced each are in boot.rst.
struct [[gnu::packed]] SetupHeader {
  uint8_t setup_sects;          // 0x1f1
  uint16_t root_flags;          // 0x1f2
  uint32_t syssize;             // 0x1f4
  uint16_t ram_size;            // 0x1f8
  uint16_t vid_mode;            // 0x1fa
  uint16_t root_dev;            // 0x1fc
  uint16_t boot_flag;           // 0x1fe
  uint16_t jump;                // 0x200
  uint32_t header;              // 0x202
  uint16_t version;             // 0x206
  uint32_t realmode_swtch;      // 0x208
  uint16_t start_sys_seg;       // 0x20c
  uint16_t kernel_version;      // 0x20e
  uint8_t type_of_loader;       // 0x210
  uint8_t loadflags;            // 0x211
  uint16_t setup_move_size;     // 0x212
  uint32_t code32_start;        // 0x214
  uint32_t ramdisk_image;       // 0x218
  uint32_t ramdisk_size;        // 0x21c
  uint32_t bootsect_kludge;     // 0x220
  uint16_t heap_end_ptr;        // 0x224
  uint8_t ext_loader_ver;       // 0x226
  uint8_t ext_loader_type;      // 0x227
  uint32_t cmd_line_ptr;        // 0x228
  uint32_t initrd_addr_max;     // 0x22c
  uint32_t kernel_alignment;    // 0x230
  uint8_t relocatable_kernel;   // 0x234
  uint8_t min_alignment;        // 0x235
  uint16_t xloadflags;          // 0x236
  uint32_t cmdline_size;        // 0x238
  uint32_t hardware_subarch;    // 0x23c
  uint64_t hardware_subarch_data;  // 0x240
  uint32_t payload_offset;      // 0x248
  uint32_t payload_length;      // 0x24c
  uint64_t setup_data;          // 0x250
  uint64_t pref_address;        // 0x258
  uint32_t init_size;           // 0x260
  uint32_t handover_offset;     // 0x264
  uint32_t kernel_info_offset;  // 0x268
};

/// Offset of the setup header in a bzImage file and in the zero page.
inline constexpr size_t kSetupHeaderOffset = 0x1f1;
static_assert(sizeof(SetupHeader) == 0x26c - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, header) == 0x202 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, version) == 0x206 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, code32_start) == 0x214 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, cmd_line_ptr) == 0x228 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, xloadflags) == 0x236 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, pref_address) == 0x258 - kSetupHeaderOffset);
static_assert(offsetof(SetupHeader, init_size) == 0x260 - kSetupHeaderOffset);

/// struct boot_e820_entry (bootparam.h): one range of the BIOS-style memory map.
struct [[gnu::packed]] E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};
static_assert(sizeof(E820Entry) == 20);

/// struct boot_params, the 4 KiB "zero page" (Documentation/x86/zero-page.rst). Fields
/// forkvm never sets are folded into padding arrays; their offsets are kept exact.
struct [[gnu::packed]] BootParams {
  std::array<uint8_t, 0x70> screen_apm_ist;  // screen_info, apm_bios_info, tboot, ist_info
  uint64_t acpi_rsdp_addr;                    // 0x070
  std::array<uint8_t, 0xc0 - 0x78> pad_078;
  uint32_t ext_ramdisk_image;                 // 0x0c0
  uint32_t ext_ramdisk_size;                  // 0x0c4
  uint32_t ext_cmd_line_ptr;                  // 0x0c8
  std::array<uint8_t, 0x1e8 - 0xcc> pad_0cc;
  uint8_t e820_entries;                       // 0x1e8
  uint8_t eddbuf_entries;                     // 0x1e9
  uint8_t edd_mbr_sig_buf_entries;            // 0x1ea
  uint8_t kbd_status;                         // 0x1eb
  uint8_t secure_boot;                        // 0x1ec
  std::array<uint8_t, 2> pad_1ed;
  uint8_t sentinel;                           // 0x1ef; must stay 0 (see bootparam.h)
  uint8_t pad_1f0;
  SetupHeader hdr;                            // 0x1f1
  std::array<uint8_t, 0x2d0 - 0x26c> pad_26c;  // includes edd_mbr_sig_buffer at 0x290
  std::array<E820Entry, kE820MaxEntries> e820_table;  // 0x2d0
  std::array<uint8_t, 0x1000 - 0xcd0> pad_cd0;        // eddbuf and padding
};
static_assert(sizeof(BootParams) == 4096);
static_assert(offsetof(BootParams, acpi_rsdp_addr) == 0x70);
static_assert(offsetof(BootParams, ext_ramdisk_image) == 0xc0);
static_assert(offsetof(BootParams, ext_cmd_line_ptr) == 0xc8);
static_assert(offsetof(BootParams, e820_entries) == 0x1e8);
static_assert(offsetof(BootParams, sentinel) == 0x1ef);
static_assert(offsetof(BootParams, hdr) == kSetupHeaderOffset);
static_assert(offsetof(BootParams, e820_table) == 0x2d0);

/// The guest's memory map (Firecracker configure_64bit_boot): RAM [0, kEbdaStart); reserved
/// [kEbdaStart, kEbdaReservedEnd) where the MP table lives; [kEbdaReservedEnd, 1 MiB) left out
/// (implicitly reserved: VGA/ROM window); then for every RAM region the part at or above
/// kHimemStart as RAM (so [1 MiB, low end) and each region above 4 GiB). Throws ConfigError
/// unless the first region starts at 0 and extends past kHimemStart.
std::vector<E820Entry> build_e820(std::span<const GuestMemory::Region> regions);

/// What the zero page carries besides the memory map.
struct ZeroPageConfig {
  /// The bzImage's own setup header (boot.rst "64-bit Boot Protocol": copy it from the
  /// image); nullopt for an ELF vmlinux, which gets a minimal synthesized header.
  std::optional<SetupHeader> kernel_header;
  uint32_t cmdline_size = 0;  ///< bytes written at kCmdlineStart, including the NUL
  uint32_t initrd_gpa = 0;    ///< 0 when there is no initramfs
  uint32_t initrd_size = 0;
};

/// Builds the zero page: the kernel's header (or a synthesized one with boot_flag, "HdrS" and
/// kernel_alignment = 16 MiB), then type_of_loader = 0xff, LOADED_HIGH and CAN_USE_HEAP with
/// heap_end_ptr = 0xfe00 (only the real-mode setup code, which the 64-bit entry skips, reads
/// them), cmd_line_ptr = kCmdlineStart, cmdline_size, ramdisk_image/size, and build_e820().
/// Throws ConfigError if the memory map is invalid or has more than 128 entries.
BootParams build_boot_params(const ZeroPageConfig& config,
                             std::span<const GuestMemory::Region> regions);

/// Writes `params` at kZeroPageStart. Throws GuestMemoryError if RAM does not cover it.
void write_boot_params(const GuestMemory& mem, const BootParams& params);

}  // namespace forkvm::x86
