#include "guest-init/mounts.hpp"

#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "guest-init/agent_error.hpp"

namespace forkvm {
namespace {

struct MountSpec {
  const char* source;
  const char* target;
  const char* type;
  unsigned long flags;
  const char* data;
  bool required;
};

// /dev first: the console and everything after it need device nodes.
constexpr MountSpec kMounts[] = {
    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", true},
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, true},
    {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, true},
    {"tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", true},
    {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", true},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666", false},
    // POSIX shared memory (shm_open, Python's multiprocessing) lives here.
    {"tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false},
};

}  // namespace

MountReport mount_filesystems() {
  MountReport report;
  for (const MountSpec& m : kMounts) {
    const std::string what = std::string("mount ") + m.target + " (" + m.type + ")";
    if (::mkdir(m.target, 0755) != 0 && errno != EEXIST) {
      if (m.required) throw_errno(FatalReason::kMount, "mkdir " + std::string(m.target));
      report.warnings.push_back("mkdir " + std::string(m.target) + ": " + std::strerror(errno));
      continue;
    }
    if (::mount(m.source, m.target, m.type, m.flags, m.data) == 0) {
      report.mounted.emplace_back(m.target);
    } else if (errno == EBUSY) {
      report.already_mounted.emplace_back(m.target);
    } else if (m.required) {
      throw_errno(FatalReason::kMount, what);
    } else {
      report.warnings.push_back(what + ": " + std::strerror(errno));
    }
  }
  return report;
}

}  // namespace forkvm
