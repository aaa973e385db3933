// state.json: the format version, the machine config, the memory file's size and digest, and
// one opaque JSON object per component. Encoding is for the writer; parse_state() is the one
// entry point for untrusted text: it checks nesting depth while parsing and validates every
// field (type, range, length, character set) before anything else uses it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "forkvm/vm.hpp"
#include "snapshot/memory_digest.hpp"

namespace forkvm::snapshot {

/// The format this code writes. A reader accepts any minor version of the major versions it
/// knows (minor versions only add optional fields) and rejects every other major version.
/// 2.0: memory.chunks required, memory.sha256 (the whole file's digest) dropped: hashing every
/// zero of RAM made the writer's pause grow with RAM, not with what the guest wrote.
inline constexpr uint32_t kFormatMajor = 2;
inline constexpr uint32_t kFormatMinor = 0;
/// Format 1, still read: 1: machine.disks; 2: machine.net; 3: machine.secrets; 4:
/// memory.chunks (optional beside memory.sha256).
inline constexpr uint32_t kFormat1LastMinor = 4;

/// File names inside a snapshot directory.
inline constexpr const char* kStateFile = "state.json";
inline constexpr const char* kStateDigestFile = "state.json.sha256";
inline constexpr const char* kMemoryFile = "memory";

/// state.json larger than this is rejected before it is read.
inline constexpr uint64_t kMaxStateBytes = 16ull << 20;
/// Deepest JSON nesting accepted in state.json (components included).
inline constexpr int kMaxJsonDepth = 64;
/// Largest guest RAM a snapshot may describe (1 TiB), which also keeps memory_mib << 20 from
/// overflowing.
inline constexpr uint64_t kMaxMemoryMib = uint64_t{1} << 20;
/// Longest component name; names use [A-Za-z0-9_.:-] only.
inline constexpr size_t kMaxComponentName = 64;

/// A format version.
struct FormatVersion {
  uint32_t major = kFormatMajor;
  uint32_t minor = kFormatMinor;
  bool operator==(const FormatVersion&) const = default;
};

/// Most disks a snapshot may record (a VM has at most 19 virtio slots, one of them vsock; with
/// a net device too, validate() allows one disk less).
inline constexpr size_t kMaxDisks = 18;
/// Longest disk image path recorded.
inline constexpr size_t kMaxDiskPath = 4096;

/// The name of copy-on-write disk `index`'s overlay file inside a snapshot directory.
std::string overlay_file_name(size_t index);

/// A copy-on-write disk's overlay inside a snapshot directory: a sparse file of the disk's size
/// holding the written bytes at their own offsets.
struct DiskOverlay {
  /// The file, always overlay_file_name(index of the disk): never a path.
  std::string file;
  /// The written byte ranges {offset, length}: sorted, disjoint, offsets 4 KiB-aligned, lengths
  /// whole sectors, inside the disk.
  std::vector<std::pair<uint64_t, uint64_t>> extents;
  /// SHA-256 of the whole file (holes read as zeros).
  std::string sha256;
  bool operator==(const DiskOverlay&) const = default;
};

/// A disk of the machine, by the identity of its image: a restore opens `path` read-only and
/// refuses an image whose size or SHA-256 differs. Read-only disks are recorded as they are; a
/// copy-on-write disk (the image is its base) also has an overlay in the snapshot directory.
/// The path is trusted as far as the snapshot is: the digest makes sure the guest gets back
/// the bytes it had, not some other file.
struct DiskRecord {
  std::string id;      ///< the serial the guest sees (1-20 printable ASCII, no spaces)
  std::string path;    ///< absolute path of the image (printable ASCII, at most kMaxDiskPath)
  uint64_t size = 0;   ///< bytes, a positive multiple of 512
  std::string sha256;  ///< of the whole image, 64 lowercase hex; empty only in memory (freeze)
  /// A copy-on-write disk (the image is its base).
  bool copy_on_write = false;
  /// Its overlay, in a snapshot directory (never set in memory: a frozen image holds the layers).
  std::optional<DiskOverlay> overlay;
  bool operator==(const DiskRecord&) const = default;
};

/// The parts of a VmConfig that define the machine a snapshot restores into. Kernel,
/// initramfs and vsock socket paths are not recorded: a restore does not load images, and
/// each restored or forked VM gets its own socket path. Disk images are (DiskRecord).
struct MachineConfig {
  uint32_t vcpus = 1;                 ///< 1..64
  uint64_t memory_mib = 0;            ///< guest RAM in MiB, 64..kMaxMemoryMib
  std::string cmdline;                ///< the command line the guest booted with (printable ASCII)
  std::optional<uint64_t> guest_cid;  ///< the vsock CID (3..2^32-2), if the machine had vsock
  std::vector<DiskRecord> disks;      ///< in VmConfig::disks order (virtio slots after vsock)
  /// The machine had a virtio-net device (its slot follows the disks). Its backend is not
  /// recorded: every restored or forked VM is given its own (RestoreOptions::net).
  bool net = false;
  /// Secrets were set in the guest (Sandbox::set_secret) and not cleared when the memory was
  /// captured: they are in the memory file and in every VM made from it. A Template refuses such
  /// an image unless TemplateOptions::allow_secrets. Format 1.3; absent in older snapshots,
  /// which are read as having none.
  bool secrets = false;
  bool operator==(const MachineConfig&) const = default;

  /// Guest RAM in bytes.
  uint64_t memory_bytes() const noexcept { return memory_mib << 20; }
};

/// The machine config of a VM built from `config` (its effective command line included).
MachineConfig machine_config_of(const VmConfig& config);

/// Throws SnapshotError (prefixed with `where`) unless `m` is in range: the same checks the
/// reader applies, so the writer can never produce a snapshot the reader refuses.
void check_machine_config(const MachineConfig& m, const std::string& where);

/// Throws SnapshotError unless `components` is an object whose keys are valid component names
/// and whose values are objects.
void check_components(const nlohmann::json& components, const std::string& where);

/// The decoded content of state.json.
struct State {
  FormatVersion format;
  MachineConfig machine;
  uint64_t memory_size = 0;   ///< bytes in the memory file (== machine.memory_bytes())
  /// The whole memory file's SHA-256, 64 lowercase hex digits: format 1 only (empty in 2).
  std::string memory_sha256;
  /// memory.chunks, a digest per chunk (memory_digest.hpp), which a verified open checks
  /// instead of memory_sha256: always in format 2, optional from 1.4, absent before.
  std::optional<MemoryChunks> memory_chunks;
  nlohmann::json components = nlohmann::json::object();  ///< name -> opaque object
  std::string created;                                   ///< ISO 8601 UTC time of writing
  std::string forkvm_version;                            ///< the forkvm version that wrote it
};

/// Serialises `state` (pretty-printed, trailing newline).
std::string encode_state(const State& state);

/// Parses and validates untrusted state.json text. Throws SnapshotError whose message starts
/// with `where` (the file path) for malformed JSON, nesting deeper than kMaxJsonDepth, an
/// unsupported major version (checked before any other field), or any field that is missing,
/// of the wrong type, out of range or inconsistent (memory.size != memory_mib MiB).
State parse_state(std::string_view text, const std::string& where);

/// The version string written into state.json.
std::string_view forkvm_version() noexcept;

}  // namespace forkvm::snapshot
