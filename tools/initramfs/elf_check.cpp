#include "tools/initramfs/elf_check.hpp"

#include <elf.h>

#include <cstring>

#include "forkvm/errors.hpp"

namespace forkvm {

void require_static_x86_64_elf(const std::string& path, std::string_view bytes) {
  Elf64_Ehdr eh;
  if (bytes.size() < sizeof eh) throw ImageError(path, "not an ELF file (too short)");
  std::memcpy(&eh, bytes.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) throw ImageError(path, "not an ELF file");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_machine != EM_X86_64) {
    throw ImageError(path, "not an x86-64 ELF file (the guest is x86-64)");
  }
  if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) throw ImageError(path, "not an executable");
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) throw ImageError(path, "bad ELF program headers");
  // e_phoff is bounded first so that e_phoff + i * 56 (i < 65536) cannot wrap.
  if (eh.e_phoff > bytes.size()) throw ImageError(path, "truncated ELF program headers");
  for (uint64_t i = 0; i < eh.e_phnum; ++i) {
    const uint64_t off = eh.e_phoff + i * sizeof(Elf64_Phdr);
    if (off > bytes.size() || bytes.size() - off < sizeof(Elf64_Phdr)) {
      throw ImageError(path, "truncated ELF program headers");
    }
    Elf64_Phdr ph;
    std::memcpy(&ph, bytes.data() + off, sizeof ph);
    if (ph.p_type == PT_INTERP) {
      throw ImageError(path,
                       "is dynamically linked (has an ELF interpreter); the guest has no libc, "
                       "use a static binary (e.g. the busybox-static package)");
    }
  }
}

}  // namespace forkvm
