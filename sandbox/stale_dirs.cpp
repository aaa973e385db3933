#include "sandbox/stale_dirs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <vector>

#include "base/fd.hpp"
#include "base/text.hpp"
#include "forkvm/errors.hpp"

namespace forkvm::stale_dirs {
namespace {

/// The owner file is a few dozen bytes; anything longer is not one.
constexpr size_t kMaxOwnerBytes = 64;

struct Owner {
  pid_t pid = 0;
  uint64_t start = 0;
};

/// Parses "<pid> <start>\n" (decimal, pid > 0); nullopt for anything else.
std::optional<Owner> parse_owner(const std::string& text) {
  Owner o;
  const char* p = text.data();
  const char* end = p + text.size();
  long long pid = 0;
  auto r = std::from_chars(p, end, pid);
  if (r.ec != std::errc() || pid <= 0 || pid > INT32_MAX || r.ptr == end || *r.ptr != ' ') {
    return std::nullopt;
  }
  r = std::from_chars(r.ptr + 1, end, o.start);
  if (r.ec != std::errc() || r.ptr + 1 != end || *r.ptr != '\n') return std::nullopt;
  o.pid = static_cast<pid_t>(pid);
  return o;
}

/// The owner recorded in `name` under the open directory `base`, read without following links.
std::optional<Owner> read_owner(int base, const std::string& name) {
  Fd dir(::openat(base, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return std::nullopt;
  Fd f(::openat(dir.get(), kOwnerFile, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!f) return std::nullopt;
  char buf[kMaxOwnerBytes + 1];
  const ssize_t n = ::read(f.get(), buf, sizeof buf);
  if (n <= 0 || static_cast<size_t>(n) > kMaxOwnerBytes) return std::nullopt;
  return parse_owner(std::string(buf, static_cast<size_t>(n)));
}

bool owner_gone(const Owner& o) {
  const std::optional<uint64_t> start = process_start_time(o.pid);
  return !start || *start != o.start;  // no such process, or the pid now names another
}

}  // namespace

std::optional<uint64_t> process_start_time(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!f || !std::getline(f, line)) return std::nullopt;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count the fields
  // after its last ')'. starttime is field 22; the state is field 3.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
  }
  uint64_t start = 0;
  const auto r = std::from_chars(field.data(), field.data() + field.size(), start);
  if (r.ec != std::errc() || r.ptr != field.data() + field.size()) return std::nullopt;
  return start;
}

void record_owner(const std::string& dir) {
  errno = 0;
  const std::optional<uint64_t> start = process_start_time(::getpid());
  if (!start) {
    // errno is the open's (EMFILE when the descriptors ran out); 0 when the file's text was bad.
    const int err = errno;
    throw ConfigError("cannot read this process's start time from /proc" +
                      (err != 0 ? ": " + errno_text(err) : std::string()));
  }
  const std::string text = std::to_string(::getpid()) + " " + std::to_string(*start) + "\n";
  const std::string path = dir + "/" + kOwnerFile;
  Fd f(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!f || ::write(f.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    throw ConfigError("cannot write " + path + ": " + errno_text(errno));
  }
}

size_t remove_stale(const std::string& base) {
  Fd dir(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return 0;
  std::vector<std::string> names;
  if (DIR* d = ::fdopendir(::dup(dir.get()))) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.rfind("forkvm-", 0) == 0) names.push_back(name);
    }
    ::closedir(d);
  }
  size_t removed = 0;
  for (const std::string& name : names) {
    struct stat st {};
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) continue;
    const std::optional<Owner> owner = read_owner(dir.get(), name);
    if (!owner || !owner_gone(*owner)) continue;
    // remove_all does not follow symbolic links inside the tree; the top is a directory (lstat).
    std::error_code ec;
    if (std::filesystem::remove_all(std::filesystem::path(base) / name, ec) > 0 && !ec) ++removed;
  }
  return removed;
}

size_t remove_stale_once(const std::string& base) {
  static std::mutex mu;
  static std::set<std::string> done;
  {
    std::lock_guard lock(mu);
    if (!done.insert(base).second) return 0;
  }
  return remove_stale(base);
}

}  // namespace forkvm::stale_dirs
