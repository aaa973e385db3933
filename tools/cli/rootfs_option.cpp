#include "tools/cli/rootfs_option.hpp"

#include <filesystem>

#include "forkvm/errors.hpp"
#include "tools/cli/args.hpp"

namespace forkvm::cli {

const char* const kRootfsUsage = "--rootfs IMG|minimal";

std::string parse_rootfs_option(const std::string& value) {
  if (value.empty()) throw UsageError("--rootfs: give an ext4 image or 'minimal'");
  return value;
}

std::string choose_rootfs(const std::optional<std::string>& option, bool builtin_kernel,
                          bool builtin_default, const std::string& builtin) {
  if (option) return *option == "minimal" ? "" : *option;
  if (!builtin_kernel || !builtin_default) return "";
  std::error_code ec;
  if (!std::filesystem::exists(builtin, ec)) {
    throw ImageError(builtin, "the built-in root filesystem is missing: build it with "
                              "tools/rootfs/build.sh (tools/build.sh does), or pass "
                              "--rootfs minimal for the initramfs alone");
  }
  return builtin;
}

}  // namespace forkvm::cli
