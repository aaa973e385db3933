#include "guest-init/root_switch.hpp"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "guest-init/agent_error.hpp"
#include "guest-init/read_file.hpp"

namespace forkvm {
namespace {

constexpr const char* kBase = "/.forkvm";
constexpr const char* kLower = "/.forkvm/lower";
constexpr const char* kRw = "/.forkvm/rw";
constexpr const char* kUpper = "/.forkvm/rw/upper";
constexpr const char* kWork = "/.forkvm/rw/work";
constexpr const char* kRoot = "/.forkvm/root";
/// What mount_filesystems() mounted, moved into the new root (/dev carries /dev/pts, /dev/shm).
constexpr const char* kMoved[] = {"/dev", "/proc", "/sys", "/tmp", "/run"};

[[noreturn]] void fail_errno(const std::string& what) {
  throw_errno(FatalReason::kRootFilesystem, what);
}

void make_dir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) fail_errno("mkdir " + path);
}

void mount_or_throw(const char* source, const std::string& target, const char* type,
                    unsigned long flags, const std::string& data, const std::string& what) {
  if (::mount(source, target.c_str(), type, flags, data.empty() ? nullptr : data.c_str()) != 0) {
    fail_errno(what);
  }
}

/// `text` without trailing whitespace (sysfs attributes end in a newline).
std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\0')) {
    text.pop_back();
  }
  return text;
}

}  // namespace

std::string find_disk_by_serial(const std::string& id) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/sys/block"), ::closedir);
  if (!dir) fail_errno("open /sys/block");
  std::string seen;
  while (const dirent* e = ::readdir(dir.get())) {
    const std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    // Only disks with a serial attribute (virtio-blk) can match; others are skipped.
    const auto serial = read_file(("/sys/block/" + name + "/serial").c_str());
    if (!serial) continue;
    const std::string s = trimmed(*serial);
    if (s == id) return "/dev/" + name;
    seen += (seen.empty() ? "" : ", ") + name + "=" + s;
  }
  throw AgentError(FatalReason::kRootFilesystem,
                   "forkvm.root=" + id + ": no disk has that serial (disks: " +
                       (seen.empty() ? "none" : seen) + ")");
}

std::string switch_root_to_disk(const std::string& id, const std::optional<std::string>& upper_id) {
  const std::string device = find_disk_by_serial(id);
  const std::string upper_device = upper_id ? find_disk_by_serial(*upper_id) : "";
  for (const char* d : {kBase, kLower, kRw, kRoot}) make_dir(d, 0755);
  // Read-only: the device itself is read-only (VIRTIO_BLK_F_RO), and the image is shared.
  mount_or_throw(device.c_str(), kLower, "ext4", MS_RDONLY | MS_NODEV, "",
                 "mount " + device + " (serial " + id + ") as ext4 on " + kLower);
  if (upper_id) {
    mount_or_throw(upper_device.c_str(), kRw, "ext4", MS_NODEV, "",
                   "mount " + upper_device + " (serial " + *upper_id + ", the writable layer) as ext4 on " + kRw);
  } else {
    mount_or_throw("tmpfs", kRw, "tmpfs", MS_NODEV, "mode=0755",
                   std::string("mount the overlay's tmpfs on ") + kRw);
  }
  make_dir(kUpper, 0755);
  make_dir(kWork, 0755);
  mount_or_throw("overlay", kRoot, "overlay", 0,
                 std::string("lowerdir=") + kLower + ",upperdir=" + kUpper + ",workdir=" + kWork,
                 std::string("mount overlayfs on ") + kRoot);
  for (const char* m : kMoved) {
    const std::string target = std::string(kRoot) + m;
    make_dir(target, 0755);
    mount_or_throw(m, target, nullptr, MS_MOVE, "", std::string("move ") + m + " to " + target);
  }
  // As switch_root(8) does for an initramfs (which pivot_root cannot leave): move the new root
  // over "/", then chroot into it.
  if (::chdir(kRoot) != 0) fail_errno(std::string("chdir ") + kRoot);
  mount_or_throw(".", "/", nullptr, MS_MOVE, "", std::string("move ") + kRoot + " to /");
  if (::chroot(".") != 0) fail_errno("chroot into the new root");
  if (::chdir("/") != 0) fail_errno("chdir / in the new root");
  return "root: " + device + " (serial " + id + ", ext4, read-only) under an overlay " +
         (upper_id ? "on " + upper_device + " (serial " + *upper_id + ")" : std::string("in RAM"));
}

}  // namespace forkvm
