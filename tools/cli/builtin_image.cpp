#include "tools/cli/builtin_image.hpp"

#include <cstdlib>
#include <filesystem>

namespace forkvm::cli {

std::string builtin_image_dir() {
  if (const char* dir = std::getenv("FORKVM_IMAGE_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  // The build tree while it holds an image (a developer's binary), else the installed copy.
  std::error_code ec;
  if (std::filesystem::exists(std::string(FORKVM_BUILTIN_IMAGE_DIR) + "/bzImage", ec)) {
    return FORKVM_BUILTIN_IMAGE_DIR;
  }
  return FORKVM_INSTALLED_IMAGE_DIR;
}

std::string builtin_kernel() { return builtin_image_dir() + "/bzImage"; }
std::string builtin_initramfs() { return builtin_image_dir() + "/initramfs.cpio.gz"; }
std::string builtin_rootfs() { return builtin_image_dir() + "/rootfs.ext4"; }

}  // namespace forkvm::cli
