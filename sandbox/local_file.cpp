#include "sandbox/local_file.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <optional>

#include "base/text.hpp"
#include "forkvm/sandbox_errors.hpp"

namespace forkvm::sandbox {
namespace {

constexpr const char* kOp = "download_file";

// Six random characters of [a-z0-9] for a temporary name (unique enough with O_EXCL retries).
std::string random_suffix() {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char raw[6] = {};
  if (::getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) {
    throw Error(std::string("getrandom: ") + errno_text(errno));
  }
  std::string s;
  for (unsigned char b : raw) s.push_back(kChars[b % (sizeof kChars - 1)]);
  return s;
}

}  // namespace

void local_file_error(const std::string& op, const std::string& path, int err) {
  const ErrorKind kind = err == ENOENT                   ? ErrorKind::kNotFound
                         : err == EACCES || err == EPERM ? ErrorKind::kPermissionDenied
                         : err == EISDIR                 ? ErrorKind::kIsADirectory
                         : err == ENOSPC || err == EDQUOT ? ErrorKind::kNoSpace
                                                         : ErrorKind::kIo;
  throw OperationError(kind, op, path, std::string("local file: ") + errno_text(err), err, false);
}

LocalDownload::LocalDownload(const std::string& local_path) : shown_(local_path), target_(local_path) {
  struct stat st {};
  std::optional<mode_t> keep_mode;
  if (::stat(local_path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      // A FIFO or a device (a directory fails here with EISDIR): written in place.
      fd_ = Fd(::open(local_path.c_str(), O_WRONLY | O_CLOEXEC));
      if (!fd_) local_file_error(kOp, shown_, errno);
      return;
    }
    keep_mode = st.st_mode & 07777;
    std::error_code ec;
    const auto resolved = std::filesystem::canonical(local_path, ec);
    if (ec) local_file_error(kOp, shown_, ec.value());
    target_ = resolved.string();
  }
  const std::filesystem::path target(target_);
  // The name is cut so that the temporary name still fits NAME_MAX (255).
  const std::string base = target.filename().string().substr(0, 200);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string temp = (dir / ("." + base + ".forkvm-" + random_suffix())).string();
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno == EEXIST) continue;
    if (fd < 0) local_file_error(kOp, shown_, errno);
    fd_ = Fd(fd);
    temp_ = std::move(temp);
    if (keep_mode) (void)::fchmod(fd, *keep_mode);  // best effort, as cp does
    return;
  }
  local_file_error(kOp, shown_, EEXIST);
}

LocalDownload::~LocalDownload() {
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
}

void LocalDownload::write(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) local_file_error(kOp, shown_, n < 0 ? errno : EIO);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void LocalDownload::commit() {
  fd_.reset();
  if (temp_.empty()) {
    committed_ = true;
    return;
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) local_file_error(kOp, shown_, errno);
  committed_ = true;
}

}  // namespace forkvm::sandbox
