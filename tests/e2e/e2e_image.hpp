// Paths of the built-in guest image for e2e tests, and a helper that boots it to the end.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "forkvm/vm.hpp"
#include "tests/support/check_write_log.hpp"

namespace forkvm::e2e {

/// The built-in image directory of this build tree (bzImage, vmlinux, initramfs.cpio.gz).
inline std::string image_dir() { return FORKVM_E2E_IMAGE_DIR; }

/// A config for the built-in image with `extra` appended to the kernel command line.
inline VmConfig builtin_config(uint32_t vcpus, uint64_t memory_mib, const std::string& extra) {
  VmConfig c;
  c.kernel = image_dir() + "/bzImage";
  c.initramfs = image_dir() + "/initramfs.cpio.gz";
  c.vcpus = vcpus;
  c.memory_mib = memory_mib;
  c.extra_cmdline = extra;
  return c;
}

/// Guest boots are emulated end to end inside kvm-lab (TCG): allow minutes, not seconds.
inline constexpr std::chrono::seconds kBootDeadline{180};

}  // namespace forkvm::e2e
