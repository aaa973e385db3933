#include "vmm/disk_digest_cache.hpp"

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
#include "forkvm/errors.hpp"
#include "snapshot/file_io.hpp"

namespace forkvm {
namespace {

constexpr size_t kDigestHexLength = 64;

bool is_digest(const std::string& s) {
  const auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  return s.size() == kDigestHexLength && std::all_of(s.begin(), s.end(), hex);
}

/// This user's alone, by the rule snapshot files are held to (snapshot::check_private: owned
/// by the effective user, no group or other write, a file with one hard link).
bool private_to_me(const std::filesystem::path& path, const struct stat& st) {
  try {
    snapshot::check_private(path, "digest cache", st);
    return true;
  } catch (const SnapshotError&) {
    return false;
  }
}

std::string entry_name(const FileStamp& s) {
  return "sha256-" + std::to_string(s.dev) + "-" + std::to_string(s.ino) + "-" +
         std::to_string(s.size) + "-" + std::to_string(s.mtime_s) + "." +
         std::to_string(s.mtime_ns) + "-" + std::to_string(s.ctime_s) + "." +
         std::to_string(s.ctime_ns);
}

/// Removes the least recently written entries past kMaxDigestEntries.
void prune(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> entries;  // mtime (ns), name
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind("sha256-", 0) != 0) continue;
    struct stat st {};
    if (::fstatat(::dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    entries.emplace_back(int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec, name);
  }
  ::closedir(d);
  if (entries.size() <= kMaxDigestEntries) return;
  std::sort(entries.begin(), entries.end());
  for (size_t i = 0; i + kMaxDigestEntries < entries.size(); ++i) {
    ::unlink((dir + "/" + entries[i].second).c_str());
  }
}

}  // namespace

std::string digest_cache_dir() {
  std::filesystem::path dir;
  if (const char* v = std::getenv("FORKVM_DIGEST_CACHE"); v != nullptr) {
    // Absolute only: a relative one would name a different directory in each working
    // directory. Anything else turns the cache off, as "off" does.
    if (*v != '/') return "";
    dir = v;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x == '/') {
    dir = std::filesystem::path(x) / "forkvm" / "digests";
  } else if (const char* h = std::getenv("HOME"); h != nullptr && *h == '/') {
    dir = std::filesystem::path(h) / ".cache" / "forkvm" / "digests";
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

std::optional<std::string> cached_disk_digest(const FileStamp& stamp) {
  const std::string dir = digest_cache_dir();
  if (dir.empty()) return std::nullopt;
  const std::string entry = dir + "/" + entry_name(stamp);
  Fd fd(::open(entry.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return std::nullopt;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || !private_to_me(entry, st)) {
    return std::nullopt;
  }
  char buf[kDigestHexLength + 2];
  const ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n <= 0) return std::nullopt;
  std::string text(buf, static_cast<size_t>(n));
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!is_digest(text)) return std::nullopt;
  return text;
}

void keep_disk_digest(const FileStamp& stamp, const std::string& digest,
                      const struct timespec& hash_began) noexcept {
  try {
    if (!is_digest(digest) || !times_settled(stamp, hash_began, kStampSettle)) return;
    const std::string dir = digest_cache_dir();
    if (dir.empty()) return;
    std::string tmp = dir + "/.tmp-XXXXXX";
    Fd fd(::mkstemp(tmp.data()));  // 0600
    if (!fd) return;
    const std::string text = digest + "\n";
    const bool written =
        ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
    fd = Fd();
    // A rename replaces an entry whole: a reader sees the old one or the new one.
    if (!written || ::rename(tmp.c_str(), (dir + "/" + entry_name(stamp)).c_str()) != 0) {
      ::unlink(tmp.c_str());
      return;
    }
    prune(dir);
  } catch (...) {
    // A cache: failing to keep an entry costs a later hash, nothing else.
  }
}

}  // namespace forkvm
