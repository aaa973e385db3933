// Where the built-in guest image (kernel, initramfs and root filesystem built by this tree) is
// found.
#pragma once

#include <string>

namespace forkvm::cli {

/// Directory of the built-in image: $FORKVM_IMAGE_DIR, else the build tree's guest/ folder when
/// it holds a kernel, else the installed share/forkvm/guest.
std::string builtin_image_dir();
/// The built-in kernel (bzImage) path.
std::string builtin_kernel();
/// The built-in initramfs path.
std::string builtin_initramfs();
/// The built-in root filesystem (Debian 12 with python3; tools/rootfs/build.sh).
std::string builtin_rootfs();

}  // namespace forkvm::cli
