#include "vmm/stamp_cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <utility>
#include <vector>

#include "base/fd.hpp"
#include "base/positional_io.hpp"
#include "forkvm/errors.hpp"
#include "snapshot/file_io.hpp"

namespace forkvm {
namespace {

/// This user's alone, by the rule snapshot files are held to (snapshot::check_private: owned
/// by the effective user, no group or other write, a file with one hard link).
bool private_to_me(const std::filesystem::path& path, const struct stat& st) {
  try {
    snapshot::check_private(path, "stamp cache", st);
    return true;
  } catch (const SnapshotError&) {
    return false;
  }
}

bool valid_kind(std::string_view kind) {
  return !kind.empty() && std::all_of(kind.begin(), kind.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

std::string entry_name(std::string_view kind, const FileStamp& s) {
  return std::string(kind) + "-" + std::to_string(s.dev) + "-" + std::to_string(s.ino) + "-" +
         std::to_string(s.size) + "-" + std::to_string(s.mtime_s) + "." +
         std::to_string(s.mtime_ns) + "-" + std::to_string(s.ctime_s) + "." +
         std::to_string(s.ctime_ns);
}

/// Removes the least recently written entries of `kind` past kMaxStampEntries.
void prune(const std::string& dir, std::string_view kind) {
  const std::string prefix = std::string(kind) + "-";
  std::vector<std::pair<int64_t, std::string>> entries;  // mtime (ns), name
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind(prefix, 0) != 0) continue;
    struct stat st {};
    if (::fstatat(::dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    entries.emplace_back(int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec, name);
  }
  ::closedir(d);
  if (entries.size() <= kMaxStampEntries) return;
  std::sort(entries.begin(), entries.end());
  for (size_t i = 0; i + kMaxStampEntries < entries.size(); ++i) {
    ::unlink((dir + "/" + entries[i].second).c_str());
  }
}

}  // namespace

std::string stamp_cache_dir() {
  std::filesystem::path dir;
  if (const char* v = std::getenv("FORKVM_STAMP_CACHE"); v != nullptr) {
    // Absolute only: a relative one would name a different directory in each working
    // directory. Anything else turns the cache off, as "off" does.
    if (*v != '/') return "";
    dir = v;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x == '/') {
    dir = std::filesystem::path(x) / "forkvm" / "stamped";
  } else if (const char* h = std::getenv("HOME"); h != nullptr && *h == '/') {
    dir = std::filesystem::path(h) / ".cache" / "forkvm" / "stamped";
  } else {
    return "";
  }
  std::error_code ec;
  std::filesystem::create_directories(dir.parent_path(), ec);
  ::mkdir(dir.c_str(), 0700);  // EEXIST is fine: checked below
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || !private_to_me(dir, st)) {
    return "";
  }
  return dir.string();
}

std::optional<std::string> read_stamped(std::string_view kind, const FileStamp& stamp,
                                        size_t max_bytes) {
  if (!valid_kind(kind)) return std::nullopt;
  const std::string dir = stamp_cache_dir();
  if (dir.empty()) return std::nullopt;
  const std::string entry = dir + "/" + entry_name(kind, stamp);
  Fd fd(::open(entry.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return std::nullopt;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || !private_to_me(entry, st) ||
      static_cast<uint64_t>(st.st_size) > max_bytes) {
    return std::nullopt;
  }
  try {
    return snapshot::read_exact(fd.get(), entry, static_cast<uint64_t>(st.st_size));
  } catch (const Error&) {
    return std::nullopt;  // unreadable, or changed size while read
  }
}

void keep_stamped(std::string_view kind, const FileStamp& stamp, const std::string& content,
                  const struct timespec& read_began) noexcept {
  try {
    if (!valid_kind(kind) || !times_settled(stamp, read_began, kStampSettle)) return;
    const std::string dir = stamp_cache_dir();
    if (dir.empty()) return;
    std::string tmp = dir + "/.tmp-XXXXXX";
    Fd fd(::mkstemp(tmp.data()));  // 0600
    if (!fd) return;
    const bool written =
        pwrite_all(fd.get(), 0,
                   {reinterpret_cast<const uint8_t*>(content.data()), content.size()}) == 0;
    fd = Fd();
    // A rename replaces an entry whole: a reader sees the old one or the new one.
    if (!written || ::rename(tmp.c_str(), (dir + "/" + entry_name(kind, stamp)).c_str()) != 0) {
      ::unlink(tmp.c_str());
      return;
    }
    prune(dir, kind);
  } catch (...) {
    // A cache: failing to keep an entry costs the work again later, nothing else.
  }
}

}  // namespace forkvm
