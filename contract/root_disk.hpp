// How the host hands the guest its root filesystem: the disk with serial kRootDiskId, named on
// the kernel command line as `forkvm.root=<serial>` (guest-init/agent_config.hpp). The agent
// mounts it read-only under a writable overlay and moves into it (guest-init/root_switch.hpp).
#pragma once

namespace forkvm {

/// The command-line key that names the root disk's serial.
inline constexpr const char* kRootCmdlineKey = "forkvm.root";
/// The command-line key that names the disk holding the overlay's writable layer (an ext4
/// file system), instead of guest RAM.
inline constexpr const char* kRootUpperCmdlineKey = "forkvm.root_upper";
/// The serial the host gives the root filesystem's disk (the first disk, /dev/vda).
inline constexpr const char* kRootDiskId = "rootfs";

}  // namespace forkvm
