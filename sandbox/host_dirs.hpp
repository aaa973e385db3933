// Host directories in a sandbox (SandboxConfig::host_dirs): checked, packed into ext4 images,
// mounted in the guest, and copied back. Private to the library; sandbox.cpp drives it.
#pragma once

#include <string>

#include "forkvm/agent_client.hpp"
#include "forkvm/sandbox.hpp"

namespace forkvm::host_dirs {

/// The serial of host directory `index`'s disk.
std::string disk_id(size_t index);

/// Throws ConfigError for a guest path that is not absolute and normalized or lies in /,
/// /proc, /sys, /dev or the agent's /run/forkvm, and ImageError (naming it) for a host path that is missing, a
/// symbolic link or not a directory.
void check(const HostDir& dir, size_t index);

/// Packs `dir.host` into a new ext4 image at `image` with `mkfs.ext4 -d` (room for the files
/// twice over plus 64 MiB, sparse). Throws ImageError naming the directory, with mkfs's
/// message, when that fails.
void pack(const HostDir& dir, const std::string& image);

/// Mounts the disk with serial disk_id(index) at dir.guest in the guest (created; nodev,
/// nosuid, ro unless writable). Throws Error with the guest's message when that fails.
void mount(AgentClient& agent, const HostDir& dir, size_t index);

/// Copies the guest's view of dir.guest back to dir.host (Sandbox::copy_back_host_dirs()),
/// adding to `report`.
void copy_back(AgentClient& agent, const HostDir& dir, HostDirCopyBack& report);

}  // namespace forkvm::host_dirs
