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

}  // namespace forkvm
