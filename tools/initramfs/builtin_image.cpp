#include "tools/initramfs/builtin_image.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "forkvm/errors.hpp"
#include "tools/initramfs/elf_check.hpp"

extern char** environ;

namespace forkvm {
namespace {

constexpr uint32_t kExecMode = 0755;
constexpr uint32_t kDirMode = 0755;
constexpr uint32_t kConsoleMajor = 5;  // Documentation/admin-guide/devices.txt: 5,1 = console
constexpr uint32_t kConsoleMinor = 1;

// Mount points and standard directories the agent and busybox expect.
struct DirSpec {
  const char* path;
  uint32_t mode;
};
constexpr DirSpec kDirectories[] = {
    {"bin", kDirMode},  {"sbin", kDirMode},     {"usr/bin", kDirMode}, {"usr/sbin", kDirMode},
    {"dev", kDirMode},  {"proc", kDirMode},     {"sys", kDirMode},     {"tmp", 01777},
    {"run", kDirMode},  {"etc", kDirMode},      {"root", 0700},
};

// Minimal account files so that `id`, `ls -l` and the shell prompt show names.
constexpr std::string_view kPasswd = "root:x:0:0:root:/root:/bin/sh\n";
constexpr std::string_view kGroup = "root:x:0:\n";

std::optional<uint32_t> parse_octal_mode(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '7') return std::nullopt;
    v = v * 8 + static_cast<uint32_t>(c - '0');
  }
  if (v > 07777) return std::nullopt;
  return v;
}

uint32_t host_mode(const std::string& host_path) {
  struct stat st {};
  if (::stat(host_path.c_str(), &st) != 0) {
    throw ImageError(host_path, std::string("cannot stat: ") + std::strerror(errno));
  }
  return st.st_mode & 07777;
}

}  // namespace

CpioWriter build_builtin_image(const BuiltinImageSpec& spec) {
  CpioWriter w;
  for (const auto& d : kDirectories) w.add_directory(d.path, d.mode);
  w.add_char_device("dev/console", kConsoleMajor, kConsoleMinor, 0600);
  w.add_file("etc/passwd", std::string(kPasswd), 0644);
  w.add_file("etc/group", std::string(kGroup), 0644);

  w.add_file_from_host("init", spec.agent_path, kExecMode);
  require_static_x86_64_elf(spec.agent_path, w.entries().at("init").data);
  w.add_file_from_host("bin/busybox", spec.busybox_path, kExecMode);
  require_static_x86_64_elf(spec.busybox_path, w.entries().at("bin/busybox").data);

  for (const auto& extra : spec.extra_files) {
    const uint32_t mode = extra.mode ? *extra.mode : host_mode(extra.host_path);
    w.add_file_from_host(extra.guest_path, extra.host_path, mode);
  }
  for (const auto& applet : spec.busybox_applets) {
    const std::string path = CpioWriter::normalize_path(applet);
    const std::string_view base = std::string_view(path).substr(path.rfind('/') + 1);
    if (base == "init" || base == "linuxrc" || w.contains(path)) continue;
    w.add_symlink(path, "/bin/busybox");
  }
  return w;
}

std::vector<std::string> list_busybox_applets(const std::string& busybox_path) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw ImageError(busybox_path, std::string("pipe failed: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::string arg0 = "busybox";
  std::string arg1 = "--list-full";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = -1;
  // posix_spawn rather than fork: the library may run inside a multi-threaded host process.
  const int rc = ::posix_spawn(&pid, busybox_path.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw ImageError(busybox_path, std::string("cannot run: ") + std::strerror(rc));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw ImageError(busybox_path, "`--list-full` failed (is this busybox?)");
  }
  std::vector<std::string> applets;
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    std::string line = out.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) applets.push_back(std::move(line));
    start = end + 1;
  }
  if (applets.empty()) throw ImageError(busybox_path, "`--list-full` printed no applets");
  return applets;
}

ExtraFile parse_extra_file(std::string_view arg) {
  const size_t first = arg.find(':');
  if (first == std::string_view::npos || first == 0 || first + 1 == arg.size()) {
    throw ConfigError("--add " + std::string(arg) + ": want HOSTPATH:GUESTPATH[:MODE]");
  }
  ExtraFile f;
  f.host_path = std::string(arg.substr(0, first));
  std::string_view rest = arg.substr(first + 1);
  const size_t last = rest.rfind(':');
  if (last != std::string_view::npos) {
    f.mode = parse_octal_mode(rest.substr(last + 1));
    if (!f.mode) {
      throw ConfigError("--add " + std::string(arg) + ": MODE must be octal, at most 07777");
    }
    rest = rest.substr(0, last);
  }
  if (rest.empty()) throw ConfigError("--add " + std::string(arg) + ": empty GUESTPATH");
  f.guest_path = std::string(rest);
  return f;
}

}  // namespace forkvm
