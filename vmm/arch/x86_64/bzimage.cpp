// bzImage loading (Documentation/x86/boot.rst "The Real-Mode Kernel Header", "Loading the rest
// of the kernel", "64-bit Boot Protocol"). Only the protected-mode part is loaded: the 64-bit
// entry skips the real-mode setup code entirely.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "forkvm/errors.hpp"
#include "memory/layout.hpp"
#include "vmm/arch/x86_64/kernel_formats.hpp"

namespace forkvm::x86 {
namespace {

constexpr uint64_t kSectorSize = 512;
constexpr uint64_t kHeaderEnd = kSetupHeaderOffset + sizeof(SetupHeader);  // 0x26c
/// A 2.12 header reaches at least to the end of handover_offset (0x268).
constexpr uint64_t kMinHeaderEnd = 0x268;

std::string protocol_string(uint16_t version) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%02u", version >> 8, version & 0xffu);
  return buf;
}

/// Reads the setup header, keeping only the bytes the image declares as header: boot.rst
/// "64-bit Boot Protocol": the header ends at 0x202 + the byte at 0x201.
SetupHeader read_setup_header(const ImageFile& file) {
  // File-controlled: every field below is validated before it is used.
  auto hdr = file.read_obj<SetupHeader>(kSetupHeaderOffset);
  if (hdr.header != kHdrSMagic) {
    throw ImageError(file.path(), "not a kernel: no ELF magic and no bzImage \"HdrS\" at 0x202");
  }
  if (hdr.boot_flag != kBootFlagMagic) {
    throw ImageError(file.path(),
                     "bad bzImage boot_flag " + hex(hdr.boot_flag) + " (want 0xaa55)");
  }
  if (hdr.version < kMinBootProtocol) {
    throw ImageError(file.path(), "boot protocol " + protocol_string(hdr.version) +
                                      " is older than 2.12: no 64-bit entry point");
  }
  if ((hdr.xloadflags & kXlfKernel64) == 0) {
    throw ImageError(file.path(), "not a 64-bit kernel (XLF_KERNEL_64 clear in xloadflags)");
  }
  if ((hdr.loadflags & kLoadedHigh) == 0) {
    throw ImageError(file.path(), "not a bzImage: LOADED_HIGH is clear (a zImage loads low)");
  }
  const uint64_t header_end = 0x202 + (hdr.jump >> 8);
  if (header_end < kMinHeaderEnd) {
    throw ImageError(file.path(), "setup header ends at " + hex(header_end) +
                                      ", too short for protocol " + protocol_string(hdr.version));
  }
  if (header_end < kHeaderEnd) {
    // Bytes past the declared header belong to the setup code, not to fields we know.
    uint8_t raw[sizeof(SetupHeader)];
    std::memcpy(raw, &hdr, sizeof raw);
    std::fill(raw + (header_end - kSetupHeaderOffset), raw + sizeof raw, uint8_t{0});
    std::memcpy(&hdr, raw, sizeof raw);
  }
  return hdr;
}

/// The kernel runtime start address (boot.rst, field init_size).
uint64_t runtime_start(const ImageFile& file, const SetupHeader& hdr, uint64_t load_addr) {
  if (hdr.relocatable_kernel == 0) return hdr.pref_address != 0 ? hdr.pref_address : load_addr;
  const uint64_t align = hdr.kernel_alignment;
  if (align == 0 || (align & (align - 1)) != 0) {
    throw ImageError(file.path(), "kernel_alignment " + hex(align) + " is not a power of two");
  }
  return (load_addr + align - 1) & ~(align - 1);
}

}  // namespace

LoadedKernel load_bzimage(const GuestMemory& mem, const ImageFile& file) {
  SetupHeader hdr = read_setup_header(file);
  const uint64_t setup_sects = hdr.setup_sects == 0 ? 4 : hdr.setup_sects;
  const uint64_t setup_bytes = (setup_sects + 1) * kSectorSize;
  if (setup_bytes >= file.size()) {
    throw ImageError(file.path(), "setup_sects = " + std::to_string(setup_sects) +
                                      " puts the protected-mode kernel at offset " +
                                      hex(setup_bytes) + ", past the end of the file (" +
                                      std::to_string(file.size()) + " bytes)");
  }
  const uint64_t payload = file.size() - setup_bytes;
  const uint64_t load_addr = layout::kHimemStart;
  if (payload <= kBzImage64BitEntryOffset) {
    throw ImageError(file.path(), "protected-mode kernel (" + std::to_string(payload) +
                                      " bytes) is too small to hold the 64-bit entry at +0x200");
  }

  const GuestMemory::Region& low = low_region(mem);
  const uint64_t low_end = low.gpa + low.size;
  if (payload > low_end - load_addr) {
    throw ImageError(file.path(), "kernel (" + std::to_string(payload) + " bytes at " +
                                      hex(load_addr) + ") does not fit in guest RAM below " +
                                      hex(low_end));
  }
  // File-controlled: pref_address, kernel_alignment and init_size decide where the kernel
  // decompresses itself; that range must be RAM the initrd will not be put in.
  const uint64_t run_start = runtime_start(file, hdr, load_addr);
  if (run_start < layout::kHimemStart || run_start > low_end ||
      hdr.init_size > low_end - run_start) {
    throw ImageError(file.path(), "kernel needs init_size " + hex(hdr.init_size) + " bytes at " +
                                      hex(run_start) + ", outside guest RAM below " +
                                      hex(low_end));
  }

  file.read_exact(setup_bytes, mem.slice_for_write(load_addr, payload));
  hdr.code32_start = static_cast<uint32_t>(load_addr);

  LoadedKernel k;
  k.format = KernelFormat::BzImage;
  k.entry = load_addr + kBzImage64BitEntryOffset;
  k.start = std::min(load_addr, run_start);
  k.end = std::max(load_addr + payload, run_start + hdr.init_size);
  k.header = hdr;
  return k;
}

}  // namespace forkvm::x86
