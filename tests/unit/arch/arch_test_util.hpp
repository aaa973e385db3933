// Test helpers for the x86-64 boot code: temporary files, synthesized bzImage and ELF kernels
// laid out byte by byte from the specs (so the loader's structs are checked against offsets
// written independently of them), and small guest memories.
#pragma once

#include <elf.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "memory/guest_memory.hpp"

namespace forkvm::x86::test {

inline constexpr uint64_t kTestMemSize = 128ull << 20;

/// Writes `value` little-endian at `offset` of `buf`, growing it if needed.
template <typename T>
void put(std::vector<uint8_t>& buf, size_t offset, T value) {
  if (buf.size() < offset + sizeof(T)) buf.resize(offset + sizeof(T));
  std::memcpy(buf.data() + offset, &value, sizeof(T));
}

/// A file in $TMPDIR (or /tmp) removed when the object goes away.
class TempFile {
 public:
  explicit TempFile(const std::vector<uint8_t>& contents) {
    const char* dir = std::getenv("TMPDIR");
    path_ = std::string(dir != nullptr ? dir : "/tmp") + "/forkvm-arch-XXXXXX";
    const int fd = ::mkstemp(path_.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    size_t done = 0;
    while (done < contents.size()) {
      const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
      if (n <= 0) {
        ::close(fd);
        throw std::runtime_error("write failed");
      }
      done += static_cast<size_t>(n);
    }
    ::close(fd);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// Fields of a synthesized bzImage; defaults describe a valid protocol 2.15 64-bit kernel.
struct FakeBzImage {
  uint8_t setup_sects = 4;
  uint16_t boot_flag = 0xaa55;
  uint32_t magic = 0x53726448;  // "HdrS"
  uint16_t version = 0x020f;
  uint8_t loadflags = 0x01;     // LOADED_HIGH
  uint16_t xloadflags = 0x03;   // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
  uint8_t header_len_byte = 0x6a;  // header ends at 0x202 + 0x6a = 0x26c
  uint32_t initrd_addr_max = 0x7fffffff;
  uint32_t kernel_alignment = 0x200000;
  uint8_t relocatable = 1;
  uint32_t cmdline_size = 2047;
  uint64_t pref_address = 0x1000000;
  uint32_t init_size = 0x800000;
  size_t payload_size = 64 * 1024;

  /// The file bytes: boot sector + setup sectors with the header, then the payload, whose
  /// byte i is (i * 7 + 3) & 0xff.
  std::vector<uint8_t> bytes() const {
    const size_t setup = (size_t{setup_sects == 0 ? 4u : setup_sects} + 1) * 512;
    std::vector<uint8_t> b(setup + payload_size, 0);
    put<uint8_t>(b, 0x1f1, setup_sects);
    put<uint16_t>(b, 0x1fe, boot_flag);
    put<uint8_t>(b, 0x200, 0xeb);
    put<uint8_t>(b, 0x201, header_len_byte);
    put<uint32_t>(b, 0x202, magic);
    put<uint16_t>(b, 0x206, version);
    put<uint8_t>(b, 0x211, loadflags);
    put<uint32_t>(b, 0x214, 0x100000);  // code32_start
    put<uint32_t>(b, 0x22c, initrd_addr_max);
    put<uint32_t>(b, 0x230, kernel_alignment);
    put<uint8_t>(b, 0x234, relocatable);
    put<uint16_t>(b, 0x236, xloadflags);
    put<uint32_t>(b, 0x238, cmdline_size);
    put<uint64_t>(b, 0x258, pref_address);
    put<uint32_t>(b, 0x260, init_size);
    for (size_t i = 0; i < payload_size; ++i) b[setup + i] = static_cast<uint8_t>(i * 7 + 3);
    b.resize(setup + payload_size);
    return b;
  }
};

/// Fields of a synthesized ELF vmlinux with one PT_LOAD segment (plus an optional PT_NOTE).
struct FakeElf {
  uint8_t elf_class = ELFCLASS64;
  uint16_t machine = EM_X86_64;
  uint16_t type = ET_EXEC;
  uint64_t entry = 0x1000000;
  uint64_t vaddr = 0xffffffff81000000ull;
  uint64_t paddr = 0x1000000;
  uint64_t offset = 0x1000;
  uint64_t filesz = 0x3000;
  uint64_t memsz = 0x5000;     ///< > filesz: the tail is bss
  size_t file_size = 0x4000;   ///< bytes of file written (offset + filesz by default)
  /// When set: the segment's first bytes (code for a guest to run); the pattern fills the rest.
  std::vector<uint8_t> code;

  /// The file bytes. Segment byte i is (i * 13 + 1) & 0xff, non-zero bytes fill the rest.
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> b(file_size, 0xcc);
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = elf_class;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = type;
    eh.e_machine = machine;
    eh.e_version = EV_CURRENT;
    eh.e_entry = entry;
    eh.e_phoff = sizeof(Elf64_Ehdr);
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 2;
    Elf64_Phdr load{};
    load.p_type = PT_LOAD;
    load.p_flags = PF_R | PF_X;
    load.p_offset = offset;
    load.p_vaddr = vaddr;
    load.p_paddr = paddr;
    load.p_filesz = filesz;
    load.p_memsz = memsz;
    load.p_align = 0x1000;
    Elf64_Phdr note{};
    note.p_type = PT_NOTE;
    put(b, 0, eh);
    put(b, sizeof eh, load);
    put(b, sizeof eh + sizeof load, note);
    for (uint64_t i = 0; i < filesz && offset + i < b.size(); ++i) {
      b[offset + i] = i < code.size() ? code[i] : static_cast<uint8_t>(i * 13 + 1);
    }
    b.resize(file_size);
    return b;
  }
};

/// Byte pattern of FakeBzImage payloads and FakeElf segments.
inline uint8_t bz_byte(size_t i) { return static_cast<uint8_t>(i * 7 + 3); }
inline uint8_t elf_byte(size_t i) { return static_cast<uint8_t>(i * 13 + 1); }

/// Fake RAM regions (no host mapping) for pure functions over the layout.
inline std::vector<GuestMemory::Region> fake_regions(uint64_t size) {
  constexpr uint64_t kHole = 3ull << 30;
  std::vector<GuestMemory::Region> r{{0, size < kHole ? size : kHole, nullptr}};
  if (size > kHole) r.push_back({4ull << 30, size - kHole, nullptr});
  return r;
}

}  // namespace forkvm::x86::test
