#include "sandbox/host_dirs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <vector>

#include "base/fd.hpp"
#include "base/text.hpp"
#include "forkvm/errors.hpp"

namespace forkvm::host_dirs {
namespace {

namespace fs = std::filesystem;

/// Bounds on what a guest may make the host walk.
constexpr size_t kMaxDepth = 256;
constexpr uint64_t kMaxEntries = 1'000'000;

/// Runs argv (no shell) and returns its exit status and combined output (the last 4 KiB).
std::pair<int, std::string> run_tool(const std::vector<std::string>& args) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw Error("pipe: " + errno_text(errno));
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("fork: " + errno_text(errno));
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(out[1], STDERR_FILENO);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string output;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    output.append(buf, static_cast<size_t>(n));
    if (output.size() > 4096) output.erase(0, output.size() - 4096);
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

std::string mkfs_ext4() {
  for (const char* p : {"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "mkfs.ext4";
}

/// A guest file name that can be a host file name as it is.
bool safe_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.size() <= 255 &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

/// A guest path for a message or a report: made printable (control bytes escaped).
std::string shown(const std::string& text) { return printable(text, 1024); }

/// Removes `name` in the directory `parent` (a whole tree for a directory) without following
/// any symbolic link.
void remove_at(int parent, const std::string& name) {
  struct stat st {};
  if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    Fd dir(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) throw Error("open " + shown(name) + ": " + errno_text(errno));
    std::vector<std::string> children;
    {
      DIR* d = ::fdopendir(::dup(dir.get()));
      if (d == nullptr) throw Error("read " + shown(name) + ": " + errno_text(errno));
      while (const dirent* e = ::readdir(d)) {
        const std::string child = e->d_name;
        if (child != "." && child != "..") children.push_back(child);
      }
      ::closedir(d);
    }
    for (const auto& child : children) remove_at(dir.get(), child);
    if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0) {
      throw Error("remove " + shown(name) + ": " + errno_text(errno));
    }
  } else if (::unlinkat(parent, name.c_str(), 0) != 0) {
    throw Error("remove " + shown(name) + ": " + errno_text(errno));
  }
}

int64_t mtime_ms(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
}

/// Copies one guest directory tree into a host directory, beneath it only.
class CopyBack {
 public:
  CopyBack(AgentClient& agent, HostDirCopyBack& report) : agent_(agent), report_(report) {}

  /// Makes the host directory `host` (an open descriptor) match the guest directory `guest`.
  void sync_dir(const std::string& guest, int host, size_t depth) {
    if (depth > kMaxDepth) {
      report_.refused.push_back(shown(guest) + ": nested deeper than " + std::to_string(kMaxDepth));
      return;
    }
    std::set<std::string> keep;
    for (const DirEntry& e : agent_.list_dir(guest)) {
      const std::string path = guest + "/" + e.name;
      if (!safe_name(e.name)) {
        report_.refused.push_back(shown(path) + ": not a safe file name");
        continue;
      }
      if (++entries_ > kMaxEntries) throw Error("host directory copy-back: more than 1000000 entries");
      keep.insert(e.name);
      // mkfs.ext4 made it for the guest's fsck; it is not the host's (and a host one stays).
      if (depth == 0 && e.name == "lost+found") continue;
      switch (e.stat.kind) {
        case FileKind::kDirectory: sync_subdir(path, host, e, depth); break;
        case FileKind::kFile: sync_file(path, host, e); break;
        case FileKind::kSymlink: sync_link(path, host, e.name); break;
        case FileKind::kOther:
          report_.refused.push_back(shown(path) + ": a special file (device, FIFO or socket)");
          break;
      }
    }
    // What the host has and the guest no longer does was deleted in the guest.
    std::vector<std::string> gone;
    {
      DIR* d = ::fdopendir(::dup(host));
      if (d == nullptr) throw Error("read a host directory: " + errno_text(errno));
      while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != ".." && keep.count(name) == 0) gone.push_back(name);
      }
      ::closedir(d);
    }
    for (const auto& name : gone) {
      remove_at(host, name);
      ++report_.removed;
    }
  }

 private:
  void sync_subdir(const std::string& path, int host, const DirEntry& e, size_t depth) {
    struct stat st {};
    const bool have = ::fstatat(host, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (have && !S_ISDIR(st.st_mode)) remove_at(host, e.name);
    if (!have || !S_ISDIR(st.st_mode)) {
      if (::mkdirat(host, e.name.c_str(), (e.stat.mode & 0777) | 0700) != 0) {
        throw Error("create directory " + shown(path) + " on the host: " + errno_text(errno));
      }
      ++report_.dirs_created;
    }
    Fd sub(::openat(host, e.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) throw Error("open " + shown(path) + " on the host: " + errno_text(errno));
    sync_dir(path, sub.get(), depth + 1);
  }

  void sync_file(const std::string& path, int host, const DirEntry& e) {
    struct stat st {};
    const bool have = ::fstatat(host, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (have && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == e.stat.size &&
        mtime_ms(st) == e.stat.mtime.count()) {
      return;  // unchanged
    }
    const std::string tmp = ".forkvm-copy-back-" + std::to_string(++temp_);
    Fd out(::openat(host, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    e.stat.mode & 0777));
    if (!out) throw Error("create a file for " + shown(path) + " on the host: " + errno_text(errno));
    try {
      agent_.read_file(path, [&](std::string_view chunk) {
        while (!chunk.empty()) {
          const ssize_t n = ::write(out.get(), chunk.data(), chunk.size());
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) throw Error("write " + shown(path) + " on the host: " + errno_text(errno));
          chunk.remove_prefix(static_cast<size_t>(n));
        }
      });
      const timespec times[2] = {{0, UTIME_OMIT},
                                 {e.stat.mtime.count() / 1000, (e.stat.mtime.count() % 1000) * 1'000'000}};
      ::futimens(out.get(), times);
      if (have && S_ISDIR(st.st_mode)) remove_at(host, e.name);
      if (::renameat(host, tmp.c_str(), host, e.name.c_str()) != 0) {
        throw Error("rename into " + shown(path) + " on the host: " + errno_text(errno));
      }
    } catch (...) {
      ::unlinkat(host, tmp.c_str(), 0);
      throw;
    }
    ++report_.files_written;
  }

  void sync_link(const std::string& path, int host, const std::string& name) {
    const ExecResult r = agent_.exec({"readlink", "--", path});
    if (!r.ok() || r.stdout_data.empty()) {
      report_.refused.push_back(shown(path) + ": cannot read the link in the guest");
      return;
    }
    std::string target = r.stdout_data;
    if (target.back() == '\n') target.pop_back();
    char buf[4096];
    const ssize_t n = ::readlinkat(host, name.c_str(), buf, sizeof buf);
    if (n >= 0 && std::string(buf, static_cast<size_t>(n)) == target) return;  // unchanged
    struct stat st {};
    if (::fstatat(host, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
      remove_at(host, name);
    }
    const std::string tmp = ".forkvm-copy-back-" + std::to_string(++temp_);
    // The target is copied as text: a link is never followed on the host.
    if (::symlinkat(target.c_str(), host, tmp.c_str()) != 0 ||
        ::renameat(host, tmp.c_str(), host, name.c_str()) != 0) {
      const int err = errno;
      ::unlinkat(host, tmp.c_str(), 0);
      throw Error("create the link " + shown(path) + " on the host: " + errno_text(err));
    }
    ++report_.links_written;
  }

  AgentClient& agent_;
  HostDirCopyBack& report_;
  uint64_t entries_ = 0;
  uint64_t temp_ = 0;
};

}  // namespace

std::string disk_id(size_t index) { return "hostdir" + std::to_string(index); }

void check(const HostDir& dir, size_t index) {
  const std::string what = "host directory " + std::to_string(index) + " (" + dir.host + ")";
  const std::string& g = dir.guest;
  bool normalized = g.size() > 1 && g.size() <= 4096 && g.front() == '/' && g.back() != '/';
  for (size_t at = 1; normalized && at < g.size();) {
    const size_t end = std::min(g.find('/', at), g.size());
    const std::string part = g.substr(at, end - at);
    normalized = !part.empty() && part != "." && part != "..";
    at = end + 1;
  }
  for (unsigned char c : g) normalized = normalized && c >= 0x20 && c != 0x7f;
  if (!normalized) {
    throw ConfigError(what + ": the guest path '" + shown(g) +
                      "' is not an absolute, normalized path other than /");
  }
  for (const char* reserved : {"/proc", "/sys", "/dev", "/run/forkvm"}) {
    const std::string r = reserved;
    if (g == r || g.rfind(r + "/", 0) == 0) {
      throw ConfigError(what + ": the guest path " + g + " is in " + r + ", which the agent needs");
    }
  }
  struct stat st {};
  if (::lstat(dir.host.c_str(), &st) != 0) {
    throw ImageError(dir.host, "the host directory cannot be used: " + errno_text(errno));
  }
  if (S_ISLNK(st.st_mode)) throw ImageError(dir.host, "the host directory is a symbolic link");
  if (!S_ISDIR(st.st_mode)) throw ImageError(dir.host, "not a directory");
}

void pack(const HostDir& dir, const std::string& image) {
  // Room for the files twice over (the guest may write) and 64 MiB; the image is sparse.
  uint64_t bytes = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir.host, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) bytes += it->file_size(ec);
  }
  if (ec) throw ImageError(dir.host, "cannot read the host directory: " + ec.message());
  const uint64_t mib = bytes * 2 / (1u << 20) + 64;
  const auto [status, output] = run_tool({mkfs_ext4(), "-q", "-F", "-m", "0", "-L", "forkvm-dir",
                                          "-d", dir.host, image, std::to_string(mib) + "M"});
  if (status != 0) {
    throw ImageError(dir.host, "packing it into an ext4 image failed (mkfs.ext4 exited with " +
                                   std::to_string(status) + "): " + output);
  }
}

void mount(AgentClient& agent, const HostDir& dir, size_t index) {
  const std::string id = disk_id(index);
  std::string device;
  for (const DirEntry& e : agent.list_dir("/sys/block")) {
    if (e.name.rfind("vd", 0) != 0 || !safe_name(e.name)) continue;
    std::string serial;
    try {
      serial = agent.read_file("/sys/block/" + e.name + "/serial", 64);
    } catch (const Error&) {
      continue;  // not a virtio disk with a serial
    }
    while (!serial.empty() && (serial.back() == '\n' || serial.back() == '\0')) serial.pop_back();
    if (serial == id) device = "/dev/" + e.name;
  }
  if (device.empty()) throw Error("host directory " + dir.host + ": the guest has no disk " + id);
  const ExecResult made = agent.exec({"mkdir", "-p", "--", dir.guest});
  const ExecResult mounted =
      made.ok() ? agent.exec({"mount", "-t", "ext4", "-o", dir.writable ? "nodev,nosuid" : "ro,nodev,nosuid",
                              device, dir.guest})
                : made;
  if (!mounted.ok()) {
    throw Error("host directory " + dir.host + ": mounting it at " + dir.guest +
                " in the guest failed: " + printable(mounted.stderr_data, 512));
  }
}

void copy_back(AgentClient& agent, const HostDir& dir, HostDirCopyBack& report) {
  Fd root(::open(dir.host.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) throw Error("host directory " + dir.host + ": " + errno_text(errno));
  CopyBack(agent, report).sync_dir(dir.guest, root.get(), 0);
}

}  // namespace forkvm::host_dirs
