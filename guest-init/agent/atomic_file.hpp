// Writing a file so that readers see either the old or the new contents, never a mix:
// a temp file in the same directory, fsync, chmod, rename over the target.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "guest-init/agent/unique_fd.hpp"

namespace forkvm::agent {

/// A file being written under a temp name (`<dir>/.<name>.forkvm-XXXXXX`) that becomes
/// `path` on commit(). Destroying it uncommitted removes the temp file.
class AtomicFile {
 public:
  /// Creates the temp file next to `path` (absolute). Throws OpError: a directory at `path`
  /// is is_a_directory, a missing parent not_found, ...
  AtomicFile(const std::string& path, mode_t mode);
  /// Moves the temp file's ownership; `other` is left without one.
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  /// Appends `bytes`. Throws OpError (no_space, io, ...).
  void write(std::string_view bytes);
  /// fsync, chmod to the mode, close and rename over the target. Throws OpError; the temp file
  /// is removed on failure.
  void commit();
  /// Removes the temp file (idempotent).
  void abort() noexcept;
  /// Bytes written so far.
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }

 private:
  std::string path_;
  std::string temp_path_;
  mode_t mode_ = 0644;
  UniqueFd fd_;
  std::uint64_t size_ = 0;
  bool done_ = false;
};

/// Replaces `path` with `bytes` atomically (AtomicFile). Throws OpError.
void write_file_atomically(const std::string& path, std::string_view bytes, mode_t mode);

/// Creates `path` and its missing parents (mkdir -p); new directories get exactly `mode`.
/// Throws OpError (a non-directory in the way is not_a_directory or exists).
void make_directories(const std::string& path, mode_t mode);

}  // namespace forkvm::agent
