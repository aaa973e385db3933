#include "guest-init/agent/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <utility>

#include "contract/protocol/messages.hpp"
#include "guest-init/agent/op_error.hpp"

namespace forkvm::agent {
namespace {

// Leaves room for ".", ".forkvm-XXXXXX" and the NUL within NAME_MAX (255).
constexpr std::size_t kMaxTempStem = 200;

}  // namespace

AtomicFile::AtomicFile(const std::string& path, mode_t mode) : path_(path), mode_(mode & 07777) {
  const auto slash = path.rfind('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    throw OpError(protocol::code::kInvalidArgument, "not a file path: " + path);
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw OpError(protocol::code::kIsADirectory, path + " is a directory", EISDIR);
  }
  const std::string dir = path.substr(0, slash + 1);  // keeps the trailing '/'
  temp_path_ = dir + "." + name.substr(0, kMaxTempStem) + ".forkvm-XXXXXX";
  const int fd = ::mkostemp(temp_path_.data(), O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    temp_path_.clear();
    throw errno_error(err, "create a temp file for " + path);
  }
  fd_.reset(fd);
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::exchange(other.temp_path_, std::string())),
      mode_(other.mode_),
      fd_(std::move(other.fd_)),
      size_(other.size_),
      done_(std::exchange(other.done_, true)) {}

AtomicFile::~AtomicFile() { abort(); }

void AtomicFile::write(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      abort();
      throw errno_error(err, "write " + path_);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
    size_ += static_cast<std::uint64_t>(n);
  }
}

void AtomicFile::commit() {
  auto fail = [this](const char* op) {
    const int err = errno;
    abort();
    throw errno_error(err, std::string(op) + " " + path_);
  };
  if (::fsync(fd_.get()) != 0) fail("fsync");
  if (::fchmod(fd_.get(), mode_) != 0) fail("chmod");
  if (::close(fd_.release()) != 0) fail("close");
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) fail("rename onto");
  done_ = true;
}

void AtomicFile::abort() noexcept {
  fd_.reset();
  if (!done_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
  done_ = true;
}

void write_file_atomically(const std::string& path, std::string_view bytes, mode_t mode) {
  AtomicFile file(path, mode);
  file.write(bytes);
  file.commit();
}

void make_directories(const std::string& path, mode_t mode) {
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    const std::string prefix = path.substr(0, pos);
    if (prefix.empty() || prefix.back() == '/') continue;
    if (::mkdir(prefix.c_str(), mode & 07777) == 0) {
      // mkdir() applies the umask; the caller asked for this exact mode.
      if (::chmod(prefix.c_str(), mode & 07777) != 0) throw errno_error(errno, "chmod " + prefix);
      continue;
    }
    const int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(prefix.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) continue;
      throw OpError(protocol::code::kNotADirectory, prefix + " exists and is not a directory",
                    ENOTDIR);
    }
    throw errno_error(err, "mkdir " + prefix);
  }
}

}  // namespace forkvm::agent
