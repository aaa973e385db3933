#include "vmm/file_stamp.hpp"

#include <utility>

namespace forkvm {

FileStamp stamp_of(std::string name, const struct stat& st) {
  FileStamp f;
  f.name = std::move(name);
  f.dev = st.st_dev;
  f.ino = st.st_ino;
  f.size = static_cast<uint64_t>(st.st_size);
  f.nlink = st.st_nlink;
  f.mode = st.st_mode;
  f.uid = st.st_uid;
  f.mtime_s = st.st_mtim.tv_sec;
  f.mtime_ns = st.st_mtim.tv_nsec;
  f.ctime_s = st.st_ctim.tv_sec;
  f.ctime_ns = st.st_ctim.tv_nsec;
  return f;
}

std::optional<FileStamp> stamp_fd(std::string name, int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::nullopt;
  return stamp_of(std::move(name), st);
}

bool times_settled(const FileStamp& f, const struct timespec& now, std::chrono::nanoseconds settle) {
  const auto as_ns = [](int64_t sec, int64_t ns) {
    return std::chrono::nanoseconds(std::chrono::seconds(sec)) + std::chrono::nanoseconds(ns);
  };
  const auto limit = as_ns(now.tv_sec, now.tv_nsec) - settle;
  return as_ns(f.mtime_s, f.mtime_ns) <= limit && as_ns(f.ctime_s, f.ctime_ns) <= limit;
}

}  // namespace forkvm
