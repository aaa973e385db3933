#include "vmm/opened_images.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace forkvm {

std::optional<DirStamp> stamp_directory(const std::string& dir) {
  char* real = ::realpath(dir.c_str(), nullptr);
  if (real == nullptr) return std::nullopt;
  DirStamp stamp;
  stamp.path = real;
  ::free(real);
  const int fd = ::open(stamp.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return std::nullopt;
  }
  bool ok = true;
  struct stat st {};
  if (::fstat(fd, &st) != 0) ok = false;
  if (ok) stamp.files.push_back(stamp_of(".", st));
  while (ok) {
    const dirent* e = ::readdir(d);
    if (e == nullptr) break;
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    // A snapshot directory holds a few regular files; anything else is not worth a stamp.
    if (stamp.files.size() > OpenedImages::kMaxEntries ||
        ::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      ok = false;
      break;
    }
    stamp.files.push_back(stamp_of(name, st));
  }
  ::closedir(d);  // closes fd
  if (!ok) return std::nullopt;
  std::sort(stamp.files.begin() + 1, stamp.files.end(),
            [](const FileStamp& a, const FileStamp& b) { return a.name < b.name; });
  return stamp;
}

std::optional<std::vector<FileStamp>> stamp_files(const std::vector<std::string>& paths) {
  std::vector<FileStamp> out;
  out.reserve(paths.size());
  for (const std::string& p : paths) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return std::nullopt;
    out.push_back(stamp_of(p, st));
  }
  return out;
}

OpenedImages& OpenedImages::instance() {
  static OpenedImages table;  // never destroyed before the VMs it names: they hold the images
  return table;
}

void OpenedImages::prune_locked() {
  std::erase_if(entries_, [](const Entry& e) { return e.image.expired(); });
}

std::shared_ptr<const VmImage> OpenedImages::find(const DirStamp& stamp, bool verify_memory,
                                                  bool verify_disks) {
  std::vector<std::string> disk_paths;
  std::vector<FileStamp> disk_stamps;
  std::shared_ptr<const VmImage> image;
  {
    std::lock_guard lock(mu_);
    prune_locked();
    for (const Entry& e : entries_) {
      if (e.stamp != stamp) continue;
      if (verify_memory && !e.verified_memory) continue;
      if (verify_disks && !e.verified_disks) continue;
      image = e.image.lock();
      if (!image) continue;
      disk_stamps = e.disks;
      break;
    }
  }
  if (!image) return nullptr;
  // The disk images live outside the directory: stamped now, outside the lock.
  for (const FileStamp& f : disk_stamps) disk_paths.push_back(f.name);
  const auto now = stamp_files(disk_paths);
  if (!now || *now != disk_stamps) return nullptr;
  return image;
}

void OpenedImages::remember(DirStamp stamp, std::vector<FileStamp> disks, bool verified_memory,
                            bool verified_disks, const std::shared_ptr<const VmImage>& image) {
  std::shared_ptr<const VmImage> released;  // destroyed outside the lock
  std::lock_guard lock(mu_);
  prune_locked();
  // One entry per directory stamp: the newest open replaces an older one (it may have passed
  // more checks; both hold the same bytes).
  std::erase_if(entries_, [&](const Entry& e) { return e.stamp == stamp; });
  entries_.push_back(Entry{std::move(stamp), std::move(disks), verified_memory, verified_disks,
                           image});
  if (keep_ == 0) return;
  std::erase(kept_, image);
  kept_.push_back(image);
  if (kept_.size() > keep_) {
    released = std::move(kept_.front());
    kept_.erase(kept_.begin());
  }
}

void OpenedImages::set_keep(size_t n) {
  std::vector<std::shared_ptr<const VmImage>> released;
  std::lock_guard lock(mu_);
  keep_ = n;
  while (kept_.size() > keep_) {
    released.push_back(std::move(kept_.front()));
    kept_.erase(kept_.begin());
  }
}

bool OpenedImages::settled(const DirStamp& stamp, const std::vector<FileStamp>& disks) const {
  std::chrono::nanoseconds settle;
  {
    std::lock_guard lock(mu_);
    settle = settle_;
  }
  // File times are CLOCK_REALTIME (coarse); so is this.
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const auto old_enough = [&](const FileStamp& f) { return times_settled(f, now, settle); };
  return std::all_of(stamp.files.begin(), stamp.files.end(), old_enough) &&
         std::all_of(disks.begin(), disks.end(), old_enough);
}

void OpenedImages::set_settle(std::chrono::nanoseconds t) {
  std::lock_guard lock(mu_);
  settle_ = t;
}

void OpenedImages::clear() {
  std::vector<std::shared_ptr<const VmImage>> released;
  std::lock_guard lock(mu_);
  entries_.clear();
  released.swap(kept_);
}

}  // namespace forkvm
