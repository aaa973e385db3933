// Whole-range positional I/O on a descriptor, EINTR-safe and without exceptions: what the disk
// backends (devices/virtio/block/) read and write their files with.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <span>

namespace forkvm {

namespace detail {
/// Runs `io(done)` (a pread/pwrite of the rest) until `len` bytes are done: 0, or an errno (EIO
/// when the file ended first).
template <class Fn>
int whole_range(Fn&& io, uint64_t len) noexcept {
  uint64_t done = 0;
  while (done < len) {
    const ssize_t n = io(done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    done += static_cast<uint64_t>(n);
  }
  return 0;
}
}  // namespace detail

/// Reads exactly out.size() bytes at `offset`: 0, or an errno (EIO for a short file).
inline int pread_all(int fd, uint64_t offset, std::span<uint8_t> out) noexcept {
  return detail::whole_range([&](uint64_t done) {
    return ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
  }, out.size());
}

/// Writes all of `data` at `offset`: 0, or an errno.
inline int pwrite_all(int fd, uint64_t offset, std::span<const uint8_t> data) noexcept {
  return detail::whole_range([&](uint64_t done) {
    return ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
  }, data.size());
}

}  // namespace forkvm
