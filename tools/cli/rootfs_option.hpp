// The --rootfs option of `forkvm run`, `forkvm boot` and `forkvm snapshot create`: which root
// filesystem the guest gets. An ext4 image is attached read-only as the first disk and the
// agent moves into it under a writable overlay in RAM (contract/root_disk.hpp); "minimal"
// keeps the initramfs alone as the root (busybox and the agent; the fastest to boot).
#pragma once

#include <optional>
#include <string>

#include "forkvm/vm.hpp"

namespace forkvm::cli {

/// The usage line for --rootfs.
extern const char* const kRootfsUsage;

/// Reads one --rootfs value: "minimal", or an image path. Throws UsageError when empty.
std::string parse_rootfs_option(const std::string& value);

/// The image a command boots with, "" for none: `option` as parsed ("minimal" means none);
/// when not given, `builtin` if the command boots the built-in kernel and `builtin_default`
/// is set, else none. Throws ImageError when the built-in image is chosen but missing (it is
/// built by tools/rootfs/build.sh), saying how to build it or opt out.
std::string choose_rootfs(const std::optional<std::string>& option, bool builtin_kernel,
                          bool builtin_default, const std::string& builtin);

/// (forkvm::attach_root_filesystem() in vm.hpp attaches the chosen image.)

}  // namespace forkvm::cli
