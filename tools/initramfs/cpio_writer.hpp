// CpioWriter: builds a "newc" (SVR4 without CRC, magic "070701") cpio archive in memory, the
// format the Linux kernel unpacks as an initramfs (Documentation/driver-api/early-userspace/
// buffer-format.rst). The output is deterministic: identical inputs give identical bytes, so
// images can be compared and cached by hash.
//
// Determinism rules: entries are emitted sorted by path (so parents precede children), mtime is
// always 0, uid/gid are 0 unless given, inode numbers are assigned 1, 2, ... in emitted order,
// nlink is 1 (2 for directories), and missing parent directories are created (0755, root).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace forkvm {

/// What a cpio entry is.
enum class CpioKind : uint8_t { kFile, kDirectory, kSymlink, kCharDevice, kBlockDevice };

/// Owner of a cpio entry; root unless given.
struct CpioOwner {
  uint32_t uid = 0;  ///< numeric user id
  uint32_t gid = 0;  ///< numeric group id
};

/// One archive member as it will be written.
struct CpioEntry {
  CpioKind kind = CpioKind::kFile;  ///< file, directory, symlink or device node
  uint32_t mode = 0;         ///< permission bits only (07777); the type bits come from kind
  CpioOwner owner;           ///< uid/gid
  std::string data;          ///< file contents, or the symlink target
  uint32_t rdev_major = 0;   ///< device nodes only
  uint32_t rdev_minor = 0;   ///< device nodes only
};

/// An in-memory newc cpio archive under construction.
class CpioWriter {
 public:
  /// Adds a regular file with the given contents. `path` is normalised (see normalize_path);
  /// throws ImageError naming the path when it is invalid or already present.
  void add_file(std::string_view path, std::string contents, uint32_t mode, CpioOwner owner = {});
  /// Adds a regular file whose contents are read now from `host_path` (ImageError naming the
  /// host file when it cannot be read).
  void add_file_from_host(std::string_view path, const std::string& host_path, uint32_t mode,
                          CpioOwner owner = {});
  /// Adds a directory. Re-adding a directory that was only created implicitly (as a parent)
  /// replaces its mode and owner.
  void add_directory(std::string_view path, uint32_t mode, CpioOwner owner = {});
  /// Adds a symbolic link pointing at `target` (stored verbatim; may be absolute).
  void add_symlink(std::string_view path, std::string_view target, uint32_t mode = 0777,
                   CpioOwner owner = {});
  /// Adds a character device node, e.g. /dev/console as 5:1.
  void add_char_device(std::string_view path, uint32_t major, uint32_t minor, uint32_t mode,
                       CpioOwner owner = {});
  /// Adds a block device node.
  void add_block_device(std::string_view path, uint32_t major, uint32_t minor, uint32_t mode,
                        CpioOwner owner = {});

  /// True when `path` (normalised) is already in the archive, explicitly or as a parent.
  bool contains(std::string_view path) const;
  /// The entries, keyed by normalised path, in the order they will be written.
  const std::map<std::string, CpioEntry>& entries() const noexcept { return entries_; }

  /// The uncompressed archive, ending with the "TRAILER!!!" record.
  std::vector<uint8_t> to_cpio() const;
  /// The archive compressed with gzip (see gzip.hpp), ready to be used as an initrd.
  std::vector<uint8_t> to_cpio_gz() const;

  /// Validates an archive path and returns it relative ("bin/sh" for "/bin/sh"). Rejects empty
  /// paths, "." and ".." components, empty components ("a//b", trailing "/") and NUL bytes,
  /// with ImageError naming the path.
  static std::string normalize_path(std::string_view path);

 private:
  void add(std::string_view path, CpioEntry entry);
  /// Shared body of add_char_device and add_block_device.
  void add_device(std::string_view path, CpioKind kind, uint32_t major, uint32_t minor,
                  uint32_t mode, CpioOwner owner);
  void ensure_parents(const std::string& path);

  std::map<std::string, CpioEntry> entries_;
  std::set<std::string> implicit_dirs_;  // directories created only as parents so far
};

}  // namespace forkvm
