#include "base/event_fd.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/text.hpp"

namespace forkvm {

EventFdError::EventFdError(int err)
    : Error(std::string("eventfd: ") + errno_text(err)), err_(err) {}

EventFd::EventFd() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw EventFdError(errno);
  fd_.reset(fd);
}

bool EventFd::signal() const noexcept {
  const uint64_t one = 1;
  for (;;) {
    const ssize_t n = ::write(fd_.get(), &one, sizeof one);
    if (n == static_cast<ssize_t>(sizeof one)) return true;
    if (n < 0 && errno == EINTR) continue;
    // EAGAIN: the counter is at its maximum, so the fd is readable already.
    return n < 0 && errno == EAGAIN;
  }
}

std::optional<uint64_t> EventFd::consume() const noexcept {
  uint64_t value = 0;
  for (;;) {
    const ssize_t n = ::read(fd_.get(), &value, sizeof value);
    if (n == static_cast<ssize_t>(sizeof value)) return value;
    if (n < 0 && errno == EINTR) continue;
    return std::nullopt;  // EAGAIN: nothing pending
  }
}

}  // namespace forkvm
