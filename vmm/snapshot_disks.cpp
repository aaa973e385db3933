#include "vmm/snapshot_disks.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include <map>
#include <mutex>
#include <optional>

#include "base/text.hpp"
#include "forkvm/errors.hpp"
#include "devices/virtio/block/cow_disk.hpp"
#include "snapshot/file_io.hpp"
#include "snapshot/snapshot.hpp"
#include "vmm/disk_digest_cache.hpp"
#include "vmm/file_stamp.hpp"

namespace forkvm {
namespace {

std::mutex digest_mu;
/// Digests by the image's stamp (vmm/file_stamp.hpp): a changed image has a new stamp.
std::map<FileStamp, std::string>& digest_cache() {
  static std::map<FileStamp, std::string> cache;  // bounded by the images a process uses
  return cache;
}

}  // namespace

std::string disk_sha256(const DiskImage& disk) {
  const std::optional<FileStamp> stamp = stamp_fd("", disk.fd());
  if (!stamp) {
    throw SnapshotError(disk.path() + ": cannot stat the disk image: " + errno_text(errno));
  }
  const FileStamp& key = *stamp;
  {
    std::lock_guard lock(digest_mu);
    if (auto it = digest_cache().find(key); it != digest_cache().end()) return it->second;
  }
  std::string digest;
  if (std::optional<std::string> kept = cached_disk_digest(key)) {
    digest = std::move(*kept);  // hashed by an earlier process (vmm/disk_digest_cache.hpp)
  } else {
    struct timespec began {};
    ::clock_gettime(CLOCK_REALTIME, &began);  // before the first byte is read
    // Hashed outside the lock: two threads may hash one image at once, and agree.
    digest = snapshot::hash_memory_file(disk.fd(), disk.size(), disk.path());
    keep_disk_digest(key, digest, began);
  }
  std::lock_guard lock(digest_mu);
  digest_cache().emplace(key, digest);
  return digest;
}

namespace {

DiskImage open_image(const snapshot::DiskRecord& r, bool verify) {
  const std::string what = "snapshot: disk '" + r.id + "' (" + r.path + ")";
  std::optional<DiskImage> disk;
  try {
    disk.emplace(DiskImage::open(r.path, true));
  } catch (const ImageError& e) {
    throw SnapshotError("snapshot: disk '" + r.id + "': " + e.what());  // names the path
  }
  if (disk->size() != r.size) {
    throw SnapshotError(what + ": the image is " + std::to_string(disk->size()) +
                        " bytes, the snapshot recorded " + std::to_string(r.size) +
                        " (the base image changed after the snapshot was taken)");
  }
  if (verify) {
    const std::string digest = disk_sha256(*disk);
    if (digest != r.sha256) {
      throw SnapshotError(what + ": SHA-256 mismatch: the snapshot recorded " + r.sha256 +
                          ", the image hashes to " + digest +
                          " (the base image changed after the snapshot was taken)");
    }
  }
  return std::move(*disk);
}

std::shared_ptr<const DiskLayer> open_overlay(const snapshot::DiskRecord& r,
                                              const std::filesystem::path& dir, bool verify) {
  const snapshot::DiskOverlay& o = *r.overlay;
  const std::filesystem::path path = dir / o.file;
  auto layer = std::make_shared<DiskLayer>();
  layer->fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!layer->fd) throw SnapshotError(path.string() + ": cannot open: " + errno_text(errno));
  struct stat st {};
  if (::fstat(layer->fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) != r.size) {
    throw SnapshotError(path.string() + ": not a regular file of the disk's size (" +
                        std::to_string(r.size) + " bytes)");
  }
  snapshot::check_private(path, "disk overlay", st);
  if (verify) {
    const std::string digest = snapshot::hash_memory_file(layer->fd.get(), r.size, path);
    if (digest != o.sha256) {
      throw SnapshotError(path.string() + ": SHA-256 mismatch: state.json says " + o.sha256 +
                          ", the file hashes to " + digest + " (corrupt or modified)");
    }
  }
  layer->map = CowDisk::block_map_of(o.extents, r.size);
  return layer;
}

}  // namespace

std::vector<std::shared_ptr<const FrozenDisk>> open_recorded_disks(
    const std::vector<snapshot::DiskRecord>& records, const std::filesystem::path& dir,
    bool verify_images, bool verify_overlays) {
  std::vector<std::shared_ptr<const FrozenDisk>> disks;
  for (const snapshot::DiskRecord& r : records) {
    DiskImage image = open_image(r, verify_images);
    if (!r.copy_on_write) {
      disks.push_back(image.freeze());
      continue;
    }
    if (!r.overlay) throw SnapshotError("snapshot: disk '" + r.id + "': copy-on-write without an overlay");
    auto layer = open_overlay(r, dir, verify_overlays);
    disks.push_back(CowDisk::frozen(std::move(image), {std::move(layer)}, ""));
  }
  return disks;
}

}  // namespace forkvm
