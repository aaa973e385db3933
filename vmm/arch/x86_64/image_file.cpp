#include "vmm/arch/x86_64/image_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "base/text.hpp"
#include "forkvm/errors.hpp"

namespace forkvm::x86 {

ImageFile::ImageFile(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw ImageError(path_, std::string("cannot open: ") + errno_text(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw ImageError(path_, std::string("cannot stat: ") + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw ImageError(path_, "not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

ImageFile::~ImageFile() {
  if (fd_ >= 0) ::close(fd_);
}

void ImageFile::read_exact(uint64_t offset, std::span<uint8_t> out) const {
  // File-controlled: offsets and lengths come from headers inside the file; check them against
  // the size with subtractions so that no sum can overflow.
  if (offset > size_ || out.size() > size_ - offset) {
    throw ImageError(path_, "truncated: needs " + std::to_string(out.size()) + " bytes at offset " +
                                std::to_string(offset) + " but the file has " +
                                std::to_string(size_));
  }
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done,
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ImageError(path_, std::string("read failed: ") + errno_text(errno));
    if (n == 0) throw ImageError(path_, "truncated: the file shrank while being read");
    done += static_cast<size_t>(n);
  }
}

}  // namespace forkvm::x86
