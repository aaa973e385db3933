// The file requests of MESSAGES.md ("Files") that finish at once: stat, exists, list_dir,
// mkdir, remove, rename; plus FileReader for streaming read_file. Every function checks its
// paths (check_path) and throws OpError on failure.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "guest-init/agent/unique_fd.hpp"

namespace forkvm::agent {

/// lstat(path) as {"kind","size","mode","mtime_ms"}.
[[nodiscard]] nlohmann::json stat_path(const std::string& path);
/// Whether lstat(path) finds something (a dangling symlink exists). ENOENT and ENOTDIR are
/// false; other errors throw.
[[nodiscard]] bool path_exists(const std::string& path);
/// The entries of directory `path` sorted by name, without "." and "..", each
/// {"name","kind","size","mode","mtime_ms"}. Names that are not UTF-8 have the bad bytes
/// replaced by U+FFFD (JSON strings must be UTF-8).
[[nodiscard]] nlohmann::json list_directory(const std::string& path);
/// mkdir, or mkdir -p with `parents`. The created directory gets exactly `mode`.
void make_directory(const std::string& path, bool parents, mode_t mode);
/// Removes a file, a symlink (never its target) or an empty directory; with `recursive`, a
/// whole tree, walked with openat/unlinkat so symlinks inside are removed, not followed.
/// Refuses "/".
void remove_path(const std::string& path, bool recursive);
/// rename(from, to).
void rename_path(const std::string& from, const std::string& to);

/// `text` if it is valid UTF-8, else a copy with every invalid byte replaced by U+FFFD.
[[nodiscard]] std::string utf8_or_replaced(const std::string& text);

/// A regular file opened for read_file, read one chunk at a time.
class FileReader {
 public:
  /// Opens `path`; anything but a regular file is refused (a directory is is_a_directory).
  explicit FileReader(const std::string& path);
  /// Up to scratch.size() next bytes, read through `scratch` (the caller's buffer, so that no
  /// zeroed chunk is made per read); empty at end of file. Throws OpError.
  [[nodiscard]] std::string read_chunk(std::span<char> scratch);
  /// Bytes returned so far.
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }

 private:
  std::string path_;
  UniqueFd fd_;
  std::uint64_t size_ = 0;
};

}  // namespace forkvm::agent
