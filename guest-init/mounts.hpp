// The filesystems PID 1 mounts before anything else can run.
#pragma once

#include <string>
#include <vector>

namespace forkvm {

/// What mount_filesystems() did.
struct MountReport {
  std::vector<std::string> mounted;          ///< mount points mounted now
  std::vector<std::string> already_mounted;  ///< mount points that were busy (EBUSY)
  std::vector<std::string> warnings;         ///< optional mounts that failed, with the reason
};

/// Mounts, in order: /dev (devtmpfs), /proc, /sys, /tmp (tmpfs, 1777), /run (tmpfs), and the
/// optional /dev/pts (devpts) and /dev/shm (tmpfs, 1777). Mount points are created when
/// missing. EBUSY counts as already mounted. Throws AgentError(kMount) when a required mount fails.
MountReport mount_filesystems();

}  // namespace forkvm
