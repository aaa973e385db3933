// A snapshot on disk: one directory holding
//   memory             guest RAM, the regions back to back in ascending guest-physical order
//                      (GuestMemory's file layout), sparse: all-zero pages are holes;
//   state.json         format version, machine config, the memory file's size and SHA-256, one
//                      opaque JSON object per component, creation time, forkvm version;
//   state.json.sha256  the SHA-256 of state.json's bytes, in sha256sum(1) form
//                      ("<64 hex>  state.json\n"), so `sha256sum -c state.json.sha256` checks it.
// The state digest covers the memory digest, so the two together cover every byte. They guard
// against corruption (a flipped bit, a truncated copy), not against an attacker, who can
// rewrite both: everything read from the directory is still validated as hostile input.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <utility>
#include <vector>
#include <nlohmann/json.hpp>
#include <string>

#include "base/fd.hpp"
#include "memory/guest_memory.hpp"
#include "snapshot/state_file.hpp"

namespace forkvm::snapshot {

/// The digests of a snapshot just written.
struct WrittenSnapshot {
  std::string state_sha256;  ///< SHA-256 of state.json
  MemoryChunks memory;       ///< the memory file's chunk digests (memory.chunks)
};

/// A copy-on-write disk's overlay to write into a snapshot (DiskOverlay in state.json).
struct OverlayToWrite {
  size_t disk = 0;  ///< its index in MachineConfig::disks (a copy_on_write record)
  /// The written byte ranges, as DiskOverlay::extents.
  std::vector<std::pair<uint64_t, uint64_t>> extents;
  /// Reads the disk's bytes at [offset, offset + out.size()): 0 or an errno.
  std::function<int(uint64_t offset, std::span<uint8_t> out)> read;
};

/// Writes a snapshot of `memory` to the new directory `dir` (which must not exist), with one
/// overlay file per copy-on-write disk (`overlays`: their extents are read through `read` and
/// recorded with the file's digest in the disk's record). Everything
/// is written into "<dir>.tmp-XXXXXX", fsynced, and renamed into place (never replacing an
/// existing directory), so `dir` either appears complete or not at all; the temporary directory
/// is removed on failure. Memory is hashed while it is written, a chunk at a time, and all-zero
/// pages are left as holes. `machine` must describe `memory` (memory_mib MiB) and pass
/// check_machine_config(); `components` must pass check_components(). Throws SnapshotError.
WrittenSnapshot write_snapshot(const std::filesystem::path& dir, const MachineConfig& machine,
                               const nlohmann::json& components, const GuestMemory& memory,
                               const std::vector<OverlayToWrite>& overlays = {});

/// How open_snapshot() checks a snapshot.
struct OpenOptions {
  /// Re-hash the memory file and compare it with state.json, copying it while hashing into a
  /// sealed memfd (no shrink, grow or write) that becomes SnapshotFiles::memory_fd: what was
  /// verified is then exactly what VMs map, and truncating or rewriting the file later cannot
  /// reach them (a truncated mapped file would SIGBUS this process on the next host access).
  /// The copy holds the file's data pages (holes stay holes) in shared memory instead of the
  /// page cache. Without it (a snapshot the caller trusts), the file itself is mapped: it must
  /// not change while any VM made from it lives. A Template verifies once when it opens a
  /// snapshot; the forks it makes from the same open image do not re-hash.
  bool verify_memory = true;
  /// Refuse a state.json larger than this (checked with fstat, before reading a byte of it).
  uint64_t max_state_bytes = kMaxStateBytes;
};

/// A snapshot opened and validated by open_snapshot().
struct SnapshotFiles {
  std::filesystem::path dir;
  State state;                    ///< the validated content of state.json
  std::string state_sha256;       ///< state.json's SHA-256 (always verified)
  bool memory_verified = false;   ///< true when the memory SHA-256 was checked and matched
  uint64_t memory_allocated = 0;  ///< bytes of disk the sparse memory file occupies
  /// For mapping: the verified sealed memfd copy (verify_memory), else the memory file itself,
  /// open read-only.
  Fd memory_fd;
};

/// Opens and validates the snapshot in `dir`, in this order, so that nothing large is read or
/// allocated before the sizes are known to be consistent:
/// 1. the directory and the three files are this user's own (check_private in file_io.hpp: owner,
///    no group or world write bit, one hard link), and the files are regular files;
/// 2. state.json.sha256 is well-formed and state.json is at most `max_state_bytes`;
/// 3. state.json's SHA-256 matches (always);
/// 4. state.json parses and validates (parse_state: major version first);
/// 5. the memory file's size equals memory.size (shorter and longer are both errors);
/// 6. with `verify_memory`, the memory file matches its digests (hashed while copied into a
///    sealed memfd, see OpenOptions::verify_memory): memory.chunks chunk by chunk when the
///    snapshot has them (format 1.4, memory_digest.hpp), memory.sha256 otherwise.
/// Throws SnapshotError naming the file and what is wrong.
SnapshotFiles open_snapshot(const std::filesystem::path& dir, const OpenOptions& options = {});

/// The SHA-256 of the first `size` bytes of the file `fd` (the memory file), read in 1 MiB
/// chunks; holes (SEEK_HOLE) are hashed as zeros without being read. Throws SnapshotError
/// naming `path` if the file is shorter than `size`.
std::string hash_memory_file(int fd, uint64_t size, const std::filesystem::path& path);

/// Guest memory for a VM restored from `files`: the memory file mapped copy-on-write
/// (GuestMemory::map_private), so nothing is copied and the cost does not grow with its size.
/// Without verify_memory the file itself is mapped, and it must not change while the mapping
/// lives: a truncated file faults (SIGBUS) on host access to the lost pages.
GuestMemory map_snapshot_memory(const SnapshotFiles& files);

}  // namespace forkvm::snapshot
