// TempDir: a private temporary directory for one test (snapshots, sockets, files), created as
// $TMPDIR/<prefix>-XXXXXX (writable inside kvm-lab too) and removed with everything in it. The
// prefix stays short because Unix socket paths inside it are limited to 107 bytes.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace forkvm::test {

class TempDir {
 public:
  /// Creates the directory. Throws std::runtime_error when mkdtemp fails.
  explicit TempDir(const std::string& prefix = "forkvm-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = tmpl;
  }
  /// Removes the tree, first giving the owner back every permission a test took away
  /// (chmod 000 files and directories could not be removed otherwise).
  ~TempDir() {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    for (auto it = fs::recursive_directory_iterator(path_, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      if (!it->is_symlink(ec)) fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// The directory.
  const std::filesystem::path& path() const noexcept { return path_; }
  /// The path of `name` inside the directory, as a string.
  std::string operator/(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace forkvm::test
