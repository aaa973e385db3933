#include "guest-init/agent/file_ops.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "contract/protocol/messages.hpp"
#include "guest-init/agent/atomic_file.hpp"
#include "guest-init/agent/op_error.hpp"

namespace forkvm::agent {
namespace {

namespace code = protocol::code;

// A deeper tree is refused rather than holding one descriptor per level without bound.
constexpr int kMaxRemoveDepth = 256;

const char* kind_of(mode_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISDIR(mode)) return "dir";
  if (S_ISLNK(mode)) return "symlink";
  return "other";
}

std::int64_t mtime_ms(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

nlohmann::json describe(const struct stat& st) {
  return {{"kind", kind_of(st.st_mode)},
          {"size", static_cast<std::int64_t>(st.st_size)},
          {"mode", static_cast<unsigned>(st.st_mode & 07777)},
          {"mtime_ms", mtime_ms(st)}};
}

// Length of the valid UTF-8 sequence at s[i], or 0 if the byte there does not start one.
std::size_t utf8_sequence(const std::string& s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t len = 0;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return len;
}

// The names in the open directory `dir` (without "." and ".."), read through a duplicate of
// the descriptor so `dir` stays open and positioned for the caller.
std::vector<std::string> entry_names(int dir, const std::string& where) {
  const int dup_fd = ::fcntl(dir, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) throw errno_error(errno, "dup " + where);
  DIR* stream = ::fdopendir(dup_fd);
  if (stream == nullptr) {
    const int err = errno;
    ::close(dup_fd);
    throw errno_error(err, "opendir " + where);
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = ::readdir(stream)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  const int read_err = errno;
  ::closedir(stream);
  if (read_err != 0) throw errno_error(read_err, "readdir " + where);
  return names;
}

// Removes everything inside the directory `dir` (an open descriptor), depth-first.
void remove_contents(int dir, const std::string& where, int depth) {
  if (depth > kMaxRemoveDepth) {
    throw OpError(code::kTooLarge, "directory tree deeper than " +
                                       std::to_string(kMaxRemoveDepth) + " levels at " + where);
  }
  const std::vector<std::string> names = entry_names(dir, where);

  for (const auto& name : names) {
    const std::string child = where + "/" + name;
    struct stat st {};
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      throw errno_error(errno, "lstat " + child);
    }
    if (S_ISDIR(st.st_mode)) {
      // O_NOFOLLOW: if the entry was swapped for a symlink since fstatat, this fails rather
      // than walking out of the tree.
      UniqueFd sub(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub.valid()) throw errno_error(errno, "open " + child);
      remove_contents(sub.get(), child, depth + 1);
      if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0) {
        throw errno_error(errno, "rmdir " + child);
      }
    } else if (::unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT) {
      throw errno_error(errno, "unlink " + child);
    }
  }
}

bool is_root(const std::string& path) {
  // "/", "//", "/./" ...: only slashes and dot components.
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
    } else if (path[i] == '.' && (i + 1 == path.size() || path[i + 1] == '/')) {
      ++i;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string utf8_or_replaced(const std::string& text) {
  std::string out;
  bool changed = false;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t len = utf8_sequence(text, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      changed = true;
      ++i;
    } else {
      out.append(text, i, len);
      i += len;
    }
  }
  return changed ? out : text;
}

nlohmann::json stat_path(const std::string& path) {
  check_path("path", path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw errno_error(errno, "lstat " + path);
  return describe(st);
}

bool path_exists(const std::string& path) {
  check_path("path", path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT || errno == ENOTDIR) return false;
  throw errno_error(errno, "lstat " + path);
}

nlohmann::json list_directory(const std::string& path) {
  check_path("path", path);
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) throw errno_error(errno, "open directory " + path);
  std::vector<std::string> names = entry_names(dir.get(), path);
  std::sort(names.begin(), names.end());
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& name : names) {
    struct stat st {};
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone
    nlohmann::json entry = describe(st);
    entry["name"] = utf8_or_replaced(name);
    entries.push_back(std::move(entry));
  }
  return entries;
}

void make_directory(const std::string& path, bool parents, mode_t mode) {
  check_path("path", path);
  if (parents) {
    make_directories(path, mode);
    return;
  }
  if (::mkdir(path.c_str(), mode & 07777) != 0) throw errno_error(errno, "mkdir " + path);
  if (::chmod(path.c_str(), mode & 07777) != 0) throw errno_error(errno, "chmod " + path);
}

void remove_path(const std::string& path, bool recursive) {
  check_path("path", path);
  if (is_root(path)) throw OpError(code::kInvalidArgument, "refusing to remove " + path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw errno_error(errno, "lstat " + path);
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0) throw errno_error(errno, "unlink " + path);
    return;
  }
  if (recursive) {
    UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir.valid()) throw errno_error(errno, "open " + path);
    remove_contents(dir.get(), path, 1);
  }
  if (::rmdir(path.c_str()) != 0) {
    // Linux may say EEXIST for a non-empty directory (POSIX allows both).
    const int err = errno == EEXIST ? ENOTEMPTY : errno;
    throw errno_error(err, "rmdir " + path);
  }
}

void rename_path(const std::string& from, const std::string& to) {
  check_path("from", from);
  check_path("to", to);
  if (::rename(from.c_str(), to.c_str()) != 0) {
    throw errno_error(errno, "rename " + from + " to " + to);
  }
}

FileReader::FileReader(const std::string& path) : path_(path) {
  check_path("path", path);
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
  fd_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd_.valid()) throw errno_error(errno, "open " + path);
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) throw errno_error(errno, "fstat " + path);
  if (S_ISDIR(st.st_mode)) {
    throw OpError(code::kIsADirectory, path + " is a directory", EISDIR);
  }
  if (!S_ISREG(st.st_mode)) {
    throw OpError(code::kInvalidArgument, path + " is not a regular file");
  }
}

std::string FileReader::read_chunk(std::span<char> scratch) {
  for (;;) {
    const ssize_t n = ::read(fd_.get(), scratch.data(), scratch.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw errno_error(errno, "read " + path_);
    size_ += static_cast<std::uint64_t>(n);
    return std::string(scratch.data(), static_cast<std::size_t>(n));
  }
}

}  // namespace forkvm::agent
