// ELF vmlinux loading (System V ABI "ELF-64 Object File Format" 1.5: ELF header §4, program
// header table §6). Each PT_LOAD segment goes to its physical address p_paddr; that is where
// an x86-64 vmlinux expects to run before it enables its own page tables.
#include <elf.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "forkvm/errors.hpp"
#include "memory/layout.hpp"
#include "vmm/arch/x86_64/kernel_formats.hpp"

namespace forkvm::x86 {
namespace {

Elf64_Ehdr read_elf_header(const ImageFile& file) {
  // File-controlled: the identification bytes are checked before anything else is trusted.
  unsigned char ident[EI_NIDENT];
  file.read_exact(0, ident);
  if (ident[EI_CLASS] != ELFCLASS64) {
    throw ImageError(file.path(), "not an ELF64 file (EI_CLASS " + std::to_string(ident[EI_CLASS]) +
                                      "): only 64-bit x86-64 kernels are supported");
  }
  if (ident[EI_DATA] != ELFDATA2LSB) {
    throw ImageError(file.path(), "ELF file is not little-endian");
  }
  const auto eh = file.read_obj<Elf64_Ehdr>(0);
  if (eh.e_machine != EM_X86_64) {
    throw ImageError(file.path(), "ELF machine " + std::to_string(eh.e_machine) + " is not x86-64");
  }
  if (eh.e_type != ET_EXEC) {
    throw ImageError(file.path(), "ELF type " + std::to_string(eh.e_type) +
                                      " is not ET_EXEC: not a vmlinux");
  }
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) {
    throw ImageError(file.path(), "ELF e_phentsize " + std::to_string(eh.e_phentsize) +
                                      " is not " + std::to_string(sizeof(Elf64_Phdr)));
  }
  // PN_XNUM (0xffff) would move the count to section 0; no kernel needs that many headers.
  if (eh.e_phnum == 0 || eh.e_phnum == PN_XNUM) {
    throw ImageError(file.path(), "ELF has no usable program header table");
  }
  return eh;
}

/// Checks one PT_LOAD against the file and guest RAM before anything is copied.
void validate_segment(const GuestMemory& mem, const ImageFile& file, const Elf64_Phdr& ph,
                      size_t index) {
  // File-controlled: offsets, sizes and addresses of every segment.
  const std::string what = "PT_LOAD segment " + std::to_string(index) + " ";
  if (ph.p_filesz > ph.p_memsz) {
    throw ImageError(file.path(), what + "has p_filesz " + hex(ph.p_filesz) + " > p_memsz " +
                                      hex(ph.p_memsz));
  }
  if (ph.p_offset > file.size() || ph.p_filesz > file.size() - ph.p_offset) {
    throw ImageError(file.path(), what + "[" + hex(ph.p_offset) + " + " + hex(ph.p_filesz) +
                                      ") runs past the end of the file (" +
                                      std::to_string(file.size()) + " bytes)");
  }
  if (ph.p_paddr < layout::kHimemStart ||
      ph.p_memsz > std::numeric_limits<uint64_t>::max() - ph.p_paddr ||
      !mem.try_slice(ph.p_paddr, ph.p_memsz)) {
    throw ImageError(file.path(), what + "at physical " + hex(ph.p_paddr) + " size " +
                                      hex(ph.p_memsz) + " is not inside guest RAM above 1 MiB");
  }
}

/// e_entry as a physical address: as is when a PT_LOAD's physical range holds it, else
/// translated through the PT_LOAD whose virtual range holds it.
uint64_t physical_entry(const ImageFile& file, const Elf64_Ehdr& eh,
                        const std::vector<Elf64_Phdr>& loads) {
  for (const Elf64_Phdr& ph : loads) {
    if (eh.e_entry >= ph.p_paddr && eh.e_entry - ph.p_paddr < ph.p_memsz) return eh.e_entry;
  }
  for (const Elf64_Phdr& ph : loads) {
    if (eh.e_entry >= ph.p_vaddr && eh.e_entry - ph.p_vaddr < ph.p_memsz) {
      return eh.e_entry - ph.p_vaddr + ph.p_paddr;
    }
  }
  throw ImageError(file.path(), "ELF entry point " + hex(eh.e_entry) +
                                    " is outside every PT_LOAD segment");
}

}  // namespace

LoadedKernel load_elf_kernel(const GuestMemory& mem, const ImageFile& file) {
  const Elf64_Ehdr eh = read_elf_header(file);
  std::vector<Elf64_Phdr> phdrs(eh.e_phnum);
  file.read_exact(eh.e_phoff, {reinterpret_cast<uint8_t*>(phdrs.data()),
                               phdrs.size() * sizeof(Elf64_Phdr)});

  std::vector<Elf64_Phdr> loads;
  for (size_t i = 0; i < phdrs.size(); ++i) {
    if (phdrs[i].p_type != PT_LOAD || phdrs[i].p_memsz == 0) continue;
    validate_segment(mem, file, phdrs[i], i);
    loads.push_back(phdrs[i]);
  }
  if (loads.empty()) throw ImageError(file.path(), "ELF has no PT_LOAD segment");

  LoadedKernel k;
  k.format = KernelFormat::Elf;
  k.entry = physical_entry(file, eh, loads);  // before copying: no partial load on error
  k.start = std::numeric_limits<uint64_t>::max();
  for (const Elf64_Phdr& ph : loads) {
    const std::span<uint8_t> dst = mem.slice_for_write(ph.p_paddr, ph.p_memsz);
    file.read_exact(ph.p_offset, dst.first(ph.p_filesz));
    std::fill(dst.begin() + static_cast<std::ptrdiff_t>(ph.p_filesz), dst.end(), uint8_t{0});
    k.start = std::min(k.start, ph.p_paddr);
    k.end = std::max(k.end, ph.p_paddr + ph.p_memsz);
  }
  return k;
}

}  // namespace forkvm::x86
