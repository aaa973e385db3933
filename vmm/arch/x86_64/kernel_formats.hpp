// Internal to the kernel loader: one loader per image format (bzimage.cpp, elf_kernel.cpp).
// load_kernel() in kernel_loader.cpp picks one from the file's magic.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "base/text.hpp"
#include "vmm/arch/x86_64/image_file.hpp"
#include "vmm/arch/x86_64/kernel_loader.hpp"

namespace forkvm::x86 {

/// Loads a bzImage (boot.rst "The Real-Mode Kernel Header"); see load_kernel.
LoadedKernel load_bzimage(const GuestMemory& mem, const ImageFile& file);

/// Loads an ELF64 vmlinux (ELF-64 Object File Format §"Program header"); see load_kernel.
LoadedKernel load_elf_kernel(const GuestMemory& mem, const ImageFile& file);

/// The GuestMemory region that starts at guest-physical 0 (the low RAM below the MMIO hole).
/// Throws ConfigError if there is none.
const GuestMemory::Region& low_region(const GuestMemory& mem);

}  // namespace forkvm::x86
