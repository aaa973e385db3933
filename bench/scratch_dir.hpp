// A private temporary directory for one benchmark run, removed with everything in it when the
// run ends, whichever way it ends.
#pragma once

#include <memory>
#include <string>

namespace forkvm::bench {

class ScratchDir {
 public:
  /// Makes $TMPDIR/forkvm-<name>-XXXXXX (/tmp without TMPDIR). Throws std::runtime_error.
  explicit ScratchDir(const std::string& name);
  /// Removes the directory and its contents (errors ignored).
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

/// The scratch directory of `forkvm-bench <bench>`, or null after printing why it could not be
/// made.
std::unique_ptr<ScratchDir> scratch_dir(const std::string& bench);

}  // namespace forkvm::bench
