// The root filesystem of a forkvm.root guest: a read-only ext4 disk under a writable overlay.
//
// The agent stays PID 1 from the initramfs; switch_root_to_disk() makes the disk the root for
// it and every process it starts (exec, file operations, shells):
//   /.forkvm/lower   the disk, ext4, mounted read-only (the image is shared by every fork)
//   /.forkvm/rw      a tmpfs holding the overlay's upper and work directories: in guest RAM,
//                    so a fork copies nothing and a child's writes stay in its own RAM; or,
//                    with forkvm.root_upper, an ext4 disk, so the writes outlive the VM
//   /.forkvm/root    overlayfs of the two, which becomes "/"
// /dev, /proc, /sys, /tmp and /run (mounted by mount_filesystems()) move into the new root
// with their submounts. The initramfs itself cannot be unmounted (it is the kernel's rootfs),
// so the agent binary keeps running from it; nothing else uses it afterwards.
#pragma once

#include <optional>
#include <string>

namespace forkvm {

/// The block device (e.g. "/dev/vda") whose virtio serial (/sys/block/<name>/serial) is `id`.
/// Throws AgentError(kRootFilesystem) naming the serials it found when none matches.
std::string find_disk_by_serial(const std::string& id);

/// Mounts the disk with serial `id` as described in the file comment and makes the overlay the
/// root; the writable layer is a tmpfs, or the ext4 disk with serial `upper_id` when given.
/// Returns a one-line account for the console. Throws AgentError(kRootFilesystem).
std::string switch_root_to_disk(const std::string& id, const std::optional<std::string>& upper_id);

}  // namespace forkvm
