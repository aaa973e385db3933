// Fuzz target: a kernel image file as load_kernel reads it (vmm/arch/x86_64/kernel_loader.hpp):
// the ELF magic choosing the format, then a bzImage's setup header (protocol version,
// xloadflags, setup_sects, init_size, cmdline_size, initrd_addr_max) or an ELF64 vmlinux's
// header and PT_LOAD segments (offsets, sizes, physical addresses, bss, the entry point),
// copied into 32 MiB of guest RAM; then the initramfs placement and the command line, which
// depend on the header just read. The file is a memfd holding the input, opened by path
// through /proc/self/fd as a real image file is. forkvm::Error (ImageError, ConfigError) is
// the answer to a bad image.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "base/fd.hpp"
#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"
#include "vmm/arch/x86_64/kernel_loader.hpp"

using namespace forkvm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const GuestMemory mem = GuestMemory::create_anonymous(32ull << 20);
  Fd file(::memfd_create("fuzz-kernel", MFD_CLOEXEC));
  if (!file) std::abort();
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::write(file.get(), data + done, size - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(file.get());
  try {
    const x86::LoadedKernel kernel = x86::load_kernel(mem, path);
    if (kernel.start > kernel.end) __builtin_trap();
    (void)x86::write_cmdline(mem, "console=ttyS0 reboot=k panic=1", kernel);
    (void)x86::load_initrd(mem, path, kernel);  // the same bytes as an initramfs
  } catch (const Error&) {
  }
  return 0;
}
