// ImageFile: a kernel or initramfs file opened read-only, with reads checked against its size.
// Everything read through it is file-controlled input; every failure is an ImageError naming
// the file, so a bad image never becomes a crash or an out-of-bounds copy.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>

namespace forkvm::x86 {

/// A regular file opened for reading (the descriptor is closed on destruction).
class ImageFile {
 public:
  /// Opens `path`. Throws ImageError when it is missing, unreadable or not a regular file.
  explicit ImageFile(std::string path);
  ImageFile(const ImageFile&) = delete;
  ImageFile& operator=(const ImageFile&) = delete;
  ~ImageFile();

  /// The path the file was opened with (used in error messages).
  const std::string& path() const noexcept { return path_; }
  /// Size in bytes when it was opened.
  uint64_t size() const noexcept { return size_; }

  /// Reads exactly out.size() bytes at `offset`. Throws ImageError ("truncated ...") when the
  /// range does not lie inside the file, or when the read fails or comes up short.
  void read_exact(uint64_t offset, std::span<uint8_t> out) const;

  /// Reads a trivially copyable object at `offset` (see read_exact).
  template <typename T>
  T read_obj(uint64_t offset) const {
    static_assert(std::is_trivially_copyable_v<T>);
    uint8_t buf[sizeof(T)];
    read_exact(offset, buf);
    T value;
    std::memcpy(&value, buf, sizeof(T));
    return value;
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace forkvm::x86
