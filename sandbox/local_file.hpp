// The host's own files in a transfer with the guest: the typed error for a local file that
// fails, and LocalDownload, where download_file() puts a guest file (atomically).
#pragma once

#include <string>
#include <string_view>

#include "base/fd.hpp"

namespace forkvm::sandbox {

/// Throws OperationError for a local file problem (`err` an errno), typed like the guest's
/// (kNotFound, kPermissionDenied, kIsADirectory, kNoSpace, else kIo) with from_guest() false.
[[noreturn]] void local_file_error(const std::string& op, const std::string& path, int err);

/// A local file being downloaded into. A regular file (or a path that does not exist yet) is
/// written as a new temporary file next to it, ".<name>.forkvm-XXXXXX" (mode 0666 less the
/// umask, or the mode of the file it replaces), and renamed over it by commit(); until then
/// the path keeps what it had, and destroying an uncommitted download removes the temporary
/// file. A symbolic link is followed (its target is replaced). Anything else that exists (a
/// FIFO, a character device such as /dev/null) is written in place: there is nothing to
/// replace atomically. Every failure throws local_file_error() with op "download_file".
class LocalDownload {
 public:
  explicit LocalDownload(const std::string& local_path);
  ~LocalDownload();
  LocalDownload(const LocalDownload&) = delete;
  LocalDownload& operator=(const LocalDownload&) = delete;

  /// Appends `bytes`.
  void write(std::string_view bytes);
  /// Puts the file in place (renames the temporary file over the path).
  void commit();

 private:
  std::string shown_;   // the caller's path, for messages
  std::string target_;  // the path replaced (a symbolic link resolved)
  std::string temp_;    // the temporary file; empty when writing in place
  Fd fd_;
  bool committed_ = false;
};

}  // namespace forkvm::sandbox
