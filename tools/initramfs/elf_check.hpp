// A guard for what goes into the built-in image: the guest has no dynamic loader and no libc,
// so the agent and busybox must be statically linked x86-64 ELF executables. Catching a
// dynamic binary here turns a confusing "No such file or directory" from the guest kernel
// (it cannot find the ELF interpreter) into a build error naming the file.
#pragma once

#include <string>
#include <string_view>

namespace forkvm {

/// Throws ImageError naming `path` unless `bytes` is a 64-bit little-endian x86-64 ELF
/// executable without a PT_INTERP program header (i.e. statically linked; static-pie counts).
void require_static_x86_64_elf(const std::string& path, std::string_view bytes);

}  // namespace forkvm
