#include "guest-init/console.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>

#include "guest-init/agent_error.hpp"
#include "guest-init/read_file.hpp"

namespace forkvm {

void say(std::string_view message) noexcept {
  static constexpr std::string_view kPrefix = "forkvm-agent: ";
  iovec iov[3] = {
      {const_cast<char*>(kPrefix.data()), kPrefix.size()},
      {const_cast<char*>(message.data()), message.size()},
      {const_cast<char*>("\n"), 1},
  };
  // One writev keeps the line whole; a tty may still take it in pieces, so finish the rest.
  size_t total = kPrefix.size() + message.size() + 1;
  size_t done = 0;
  int first = 0;
  while (done < total) {
    const ssize_t n = ::writev(STDOUT_FILENO, iov + first, 3 - first);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // no console: nothing else to tell
    }
    done += static_cast<size_t>(n);
    size_t left = static_cast<size_t>(n);
    while (first < 3 && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      ++first;
    }
    if (first < 3) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
}

void drain_console() noexcept {
  while (::tcdrain(STDOUT_FILENO) != 0 && errno == EINTR) {
  }
}

void setup_console() {
  const int fd = ::open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) throw_errno(FatalReason::kConsole, "open /dev/console");
  for (int target = 0; target <= 2; ++target) {
    if (fd != target && ::dup2(fd, target) < 0) {
      throw_errno(FatalReason::kConsole, "dup2 /dev/console");
    }
  }
  if (fd > 2) ::close(fd);
}

std::string console_tty_path() {
  // The file lists the console devices, e.g. "tty0 ttyS0"; the last one is /dev/console.
  const auto active = read_file("/sys/class/tty/console/active");
  if (!active) return "/dev/console";
  std::string_view list = *active;
  while (!list.empty() && (list.back() == '\n' || list.back() == ' ')) list.remove_suffix(1);
  const size_t space = list.rfind(' ');
  const std::string_view name = space == std::string_view::npos ? list : list.substr(space + 1);
  if (name.empty() || name.find('/') != std::string_view::npos) return "/dev/console";
  return "/dev/" + std::string(name);
}

std::string printable(std::string_view text, size_t max_len) {
  std::string out;
  for (char c : text.substr(0, max_len)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
  }
  if (text.size() > max_len) out += "...";
  return out;
}

}  // namespace forkvm
