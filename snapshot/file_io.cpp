#include "snapshot/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/text.hpp"
#include "forkvm/errors.hpp"

namespace forkvm::snapshot {

void fail(const std::filesystem::path& path, const std::string& what) {
  throw SnapshotError(path.string() + ": " + what);
}

void fail_errno(const std::filesystem::path& path, const std::string& what, int err) {
  fail(path, what + ": " + errno_text(err));
}

void check_private(const std::filesystem::path& path, std::string_view label, const struct stat& st) {
  const std::string what(label);
  if (st.st_uid != ::geteuid()) {
    fail(path, what + " belongs to uid " + std::to_string(st.st_uid) + ", not to this user (uid " +
                   std::to_string(::geteuid()) + ")");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    fail(path, what + " is writable by group or others (mode " + mode + ")");
  }
  if (!S_ISDIR(st.st_mode) && st.st_nlink != 1) {
    fail(path, what + " has " + std::to_string(st.st_nlink) +
                   " hard links (another name for it could change it)");
  }
}

Fd open_regular_file(const std::filesystem::path& path, std::string_view label, struct stat& st) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    const int err = errno;
    if (err == ENOENT) fail(path, std::string(label) + " is missing");
    fail_errno(path, "cannot open " + std::string(label), err);
  }
  if (fstat(fd.get(), &st) != 0) fail_errno(path, "cannot stat " + std::string(label), errno);
  if (!S_ISREG(st.st_mode)) fail(path, std::string(label) + " is not a regular file");
  check_private(path, label, st);
  // A regular file ignores O_NONBLOCK, but clear it so nothing downstream is surprised.
  const int flags = fcntl(fd.get(), F_GETFL);
  if (flags < 0 || fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    fail_errno(path, "cannot clear O_NONBLOCK on " + std::string(label), errno);
  }
  return fd;
}

std::string read_exact(int fd, const std::filesystem::path& path, uint64_t size) {
  std::string out(size, '\0');
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = pread(fd, out.data() + done, size - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(path, "read failed", errno);
    }
    if (n == 0) fail(path, "file shrank while being read");
    done += static_cast<uint64_t>(n);
  }
  char extra;
  const ssize_t n = pread(fd, &extra, 1, static_cast<off_t>(size));
  if (n > 0) fail(path, "file grew while being read");
  return out;
}

void pwrite_all(int fd, const std::filesystem::path& path, std::span<const uint8_t> bytes,
                uint64_t offset) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(path, "write failed", errno);
    }
    done += static_cast<size_t>(n);
  }
}

void write_new_file(const std::filesystem::path& path, std::string_view text) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) fail_errno(path, "cannot create", errno);
  pwrite_all(fd.get(), path, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
             0);
  fsync_or_throw(fd.get(), path);
}

void fsync_or_throw(int fd, const std::filesystem::path& path) {
  if (fsync(fd) != 0) fail_errno(path, "fsync failed", errno);
}

void fsync_dir(const std::filesystem::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) fail_errno(path, "cannot open directory", errno);
  fsync_or_throw(fd.get(), path);
}

}  // namespace forkvm::snapshot
