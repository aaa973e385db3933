#include "tools/initramfs/cpio_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "forkvm/errors.hpp"
#include "tools/initramfs/gzip.hpp"

namespace forkvm {
namespace {

constexpr uint32_t kPermissionBits = 07777;
constexpr uint32_t kDefaultDirMode = 0755;
constexpr size_t kHeaderSize = 110;  // "070701" + 13 fields of 8 hex digits
constexpr std::string_view kTrailerName = "TRAILER!!!";

uint32_t type_bits(CpioKind kind) {
  switch (kind) {
    case CpioKind::kFile: return S_IFREG;
    case CpioKind::kDirectory: return S_IFDIR;
    case CpioKind::kSymlink: return S_IFLNK;
    case CpioKind::kCharDevice: return S_IFCHR;
    case CpioKind::kBlockDevice: return S_IFBLK;
  }
  return 0;
}

// The 13 numeric fields of a newc header, in on-disk order (buffer-format.rst).
struct NewcHeader {
  uint32_t ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
      rdevminor, namesize, check;
};

void pad4(std::vector<uint8_t>& out) {
  while (out.size() % 4 != 0) out.push_back(0);
}

void append_record(std::vector<uint8_t>& out, const NewcHeader& h, std::string_view name,
                   std::string_view data) {
  char buf[kHeaderSize + 1];
  std::snprintf(buf, sizeof buf,
                "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", h.ino, h.mode,
                h.uid, h.gid, h.nlink, h.mtime, h.filesize, h.devmajor, h.devminor, h.rdevmajor,
                h.rdevminor, h.namesize, h.check);
  out.insert(out.end(), buf, buf + kHeaderSize);
  out.insert(out.end(), name.begin(), name.end());
  out.push_back(0);
  pad4(out);  // header + name are padded together to a multiple of four
  out.insert(out.end(), data.begin(), data.end());
  pad4(out);
}

std::string read_host_file(const std::string& host_path) {
  const int fd = ::open(host_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ImageError(host_path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw ImageError(host_path, "not a regular file");
  }
  std::string data;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw ImageError(host_path, std::string("read failed: ") + std::strerror(err));
    }
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return data;
}

}  // namespace

std::string CpioWriter::normalize_path(std::string_view path) {
  const std::string shown(path);
  std::string_view rest = path;
  while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
  if (rest.empty()) throw ImageError(shown, "empty archive path");
  if (rest.find('\0') != std::string_view::npos) {
    throw ImageError(shown, "archive path contains a NUL byte");
  }
  size_t start = 0;
  while (start <= rest.size()) {
    size_t end = rest.find('/', start);
    if (end == std::string_view::npos) end = rest.size();
    const std::string_view component = rest.substr(start, end - start);
    if (component.empty()) throw ImageError(shown, "archive path has an empty component");
    if (component == "." || component == "..") {
      throw ImageError(shown, "archive path has a '" + std::string(component) + "' component");
    }
    start = end + 1;
  }
  return std::string(rest);
}

void CpioWriter::ensure_parents(const std::string& path) {
  for (size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string parent = path.substr(0, slash);
    auto it = entries_.find(parent);
    if (it == entries_.end()) {
      CpioEntry dir;
      dir.kind = CpioKind::kDirectory;
      dir.mode = kDefaultDirMode;
      entries_.emplace(parent, std::move(dir));
      implicit_dirs_.insert(parent);
    } else if (it->second.kind != CpioKind::kDirectory) {
      throw ImageError(path, "parent '" + parent + "' is not a directory in the archive");
    }
  }
}

void CpioWriter::add(std::string_view path, CpioEntry entry) {
  std::string name = normalize_path(path);
  if ((entry.mode & ~kPermissionBits) != 0) {
    throw ImageError(name, "mode has bits outside 07777");
  }
  if (entry.data.size() > UINT32_MAX) {
    throw ImageError(name, "too large for a newc archive (4 GiB limit)");
  }
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    const bool upgrade_implicit = entry.kind == CpioKind::kDirectory && implicit_dirs_.count(name);
    if (!upgrade_implicit) throw ImageError(name, "already in the archive");
    implicit_dirs_.erase(name);
    it->second = std::move(entry);
    return;
  }
  ensure_parents(name);
  entries_.emplace(std::move(name), std::move(entry));
}

void CpioWriter::add_file(std::string_view path, std::string contents, uint32_t mode,
                          CpioOwner owner) {
  CpioEntry e;
  e.kind = CpioKind::kFile;
  e.mode = mode;
  e.owner = owner;
  e.data = std::move(contents);
  add(path, std::move(e));
}

void CpioWriter::add_file_from_host(std::string_view path, const std::string& host_path,
                                    uint32_t mode, CpioOwner owner) {
  add_file(path, read_host_file(host_path), mode, owner);
}

void CpioWriter::add_directory(std::string_view path, uint32_t mode, CpioOwner owner) {
  CpioEntry e;
  e.kind = CpioKind::kDirectory;
  e.mode = mode;
  e.owner = owner;
  add(path, std::move(e));
}

void CpioWriter::add_symlink(std::string_view path, std::string_view target, uint32_t mode,
                             CpioOwner owner) {
  if (target.empty() || target.find('\0') != std::string_view::npos) {
    throw ImageError(std::string(path), "symlink target is empty or contains a NUL byte");
  }
  CpioEntry e;
  e.kind = CpioKind::kSymlink;
  e.mode = mode;
  e.owner = owner;
  e.data = std::string(target);
  add(path, std::move(e));
}

void CpioWriter::add_char_device(std::string_view path, uint32_t major, uint32_t minor,
                                 uint32_t mode, CpioOwner owner) {
  add_device(path, CpioKind::kCharDevice, major, minor, mode, owner);
}

void CpioWriter::add_block_device(std::string_view path, uint32_t major, uint32_t minor,
                                  uint32_t mode, CpioOwner owner) {
  add_device(path, CpioKind::kBlockDevice, major, minor, mode, owner);
}

void CpioWriter::add_device(std::string_view path, CpioKind kind, uint32_t major,
                            uint32_t minor, uint32_t mode, CpioOwner owner) {
  CpioEntry e;
  e.kind = kind;
  e.mode = mode;
  e.owner = owner;
  e.rdev_major = major;
  e.rdev_minor = minor;
  add(path, std::move(e));
}

bool CpioWriter::contains(std::string_view path) const {
  return entries_.count(normalize_path(path)) != 0;
}

std::vector<uint8_t> CpioWriter::to_cpio() const {
  std::vector<uint8_t> out;
  size_t total = 0;
  for (const auto& [name, e] : entries_) total += kHeaderSize + name.size() + e.data.size() + 8;
  out.reserve(total + 256);

  uint32_t ino = 1;
  for (const auto& [name, e] : entries_) {
    NewcHeader h{};
    h.ino = ino++;
    h.mode = type_bits(e.kind) | e.mode;
    h.uid = e.owner.uid;
    h.gid = e.owner.gid;
    h.nlink = e.kind == CpioKind::kDirectory ? 2 : 1;
    h.filesize = static_cast<uint32_t>(e.data.size());  // checked in add()
    h.rdevmajor = e.rdev_major;
    h.rdevminor = e.rdev_minor;
    h.namesize = static_cast<uint32_t>(name.size() + 1);
    append_record(out, h, name, e.data);
  }
  NewcHeader trailer{};
  trailer.nlink = 1;
  trailer.namesize = static_cast<uint32_t>(kTrailerName.size() + 1);
  append_record(out, trailer, kTrailerName, {});
  return out;
}

std::vector<uint8_t> CpioWriter::to_cpio_gz() const { return gzip_compress(to_cpio()); }

}  // namespace forkvm
