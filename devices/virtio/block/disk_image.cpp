#include "devices/virtio/block/disk_image.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "base/positional_io.hpp"
#include "base/text.hpp"
#include "devices/virtio/block/virtio_blk.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {
namespace {

/// A read-only image frozen for forks: every child gets a duplicate of its descriptor.
class SharedImage final : public FrozenDisk {
 public:
  explicit SharedImage(DiskImage image) : image_(std::move(image)) {}
  std::unique_ptr<BlockBackend> open_child() const override {
    return std::make_unique<DiskImage>(image_.share());
  }

 private:
  DiskImage image_;
};

int fallocate_errno(int fd, int mode, uint64_t offset, uint64_t len) noexcept {
  while (::fallocate(fd, mode, static_cast<off_t>(offset), static_cast<off_t>(len)) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

}  // namespace

DiskImage DiskImage::open(const std::string& path, bool read_only) {
  DiskImage d;
  d.path_ = path;
  d.read_only_ = read_only;
  // O_NONBLOCK: a FIFO given as an image must not hang the open (it is refused below).
  d.fd_.reset(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK));
  if (!d.fd_) throw ImageError(path, "cannot open disk image " + std::string(read_only ? "read-only" : "read-write") + ": " + errno_text(errno));
  struct stat st {};
  if (::fstat(d.fd_.get(), &st) != 0) throw ImageError(path, "fstat: " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) throw ImageError(path, "a disk image must be a regular file");
  if (st.st_size == 0) throw ImageError(path, "the disk image is empty");
  if (st.st_size % blk::kSectorSize != 0) {
    throw ImageError(path, "the disk image is " + std::to_string(st.st_size) +
                               " bytes, not a whole number of 512-byte sectors");
  }
  d.size_ = static_cast<uint64_t>(st.st_size);
  // Back to blocking I/O for the reads and writes.
  const int flags = ::fcntl(d.fd_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(d.fd_.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    throw ImageError(path, "fcntl: " + errno_text(errno));
  }
  // An open-file-description lock over the whole file: it belongs to this descriptor (not the
  // process), so two disks of one process conflict too, and it goes when the descriptor closes.
  struct flock lock {};
  lock.l_type = read_only ? F_RDLCK : F_WRLCK;
  lock.l_whence = SEEK_SET;
  if (::fcntl(d.fd_.get(), F_OFD_SETLK, &lock) != 0) {
    const int err = errno;
    if (err == EAGAIN || err == EACCES) {
      throw ImageError(path, read_only
          ? "the disk image is open read-write elsewhere (another VM or process holds its write lock)"
          : "the disk image is in use elsewhere (another VM or process holds a lock on it); a "
            "read-write disk needs it to itself");
    }
    throw ImageError(path, "cannot lock the disk image: " + errno_text(err));
  }
  // Probe hole punching past the end: with KEEP_SIZE it changes nothing, and it fails with
  // EOPNOTSUPP where the file system cannot punch holes.
  if (!read_only) {
    d.can_punch_ = fallocate_errno(d.fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                   d.size_, blk::kSectorSize) == 0;
  }
  return d;
}

DiskImage DiskImage::share() const {
  if (!read_only_) throw ImageError(path_, "a read-write disk image cannot be shared");
  DiskImage d;
  d.path_ = path_;
  d.read_only_ = true;
  d.size_ = size_;
  d.fd_.reset(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!d.fd_) throw ImageError(path_, "cannot duplicate the disk image's descriptor: " + errno_text(errno));
  return d;
}

std::shared_ptr<const FrozenDisk> DiskImage::freeze() {
  if (!read_only_) {
    throw SnapshotError(path_ + ": a read-write (persistent) disk cannot be frozen for forks; "
                        "attach it read-only or copy-on-write");
  }
  return std::make_shared<const SharedImage>(share());
}

int DiskImage::read(uint64_t offset, std::span<uint8_t> out) const noexcept {
  return pread_all(fd_.get(), offset, out);
}

int DiskImage::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
  if (read_only_) return EROFS;
  return pwrite_all(fd_.get(), offset, data);
}

int DiskImage::flush() noexcept {
  if (read_only_) return 0;
  while (::fdatasync(fd_.get()) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

int DiskImage::punch_hole(uint64_t offset, uint64_t len) noexcept {
  if (read_only_) return EROFS;
  return fallocate_errno(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len);
}

int DiskImage::write_zeroes(uint64_t offset, uint64_t len) noexcept {
  if (read_only_) return EROFS;
  const int err = fallocate_errno(fd_.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, len);
  if (err != EOPNOTSUPP) return err;
  // No ZERO_RANGE here: write zeros.
  return write_zeros_through(*this, offset, len);
}

}  // namespace forkvm
