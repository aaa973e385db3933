#include "devices/virtio/vsock/epoll_set.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include "base/text.hpp"
#include "devices/virtio/vsock/vsock_error.hpp"

namespace forkvm::vsock {

EpollSet::EpollSet() : fd_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!fd_) throw VsockError(std::string("vsock: epoll_create1: ") + errno_text(errno));
}

bool EpollSet::add(int fd, uint32_t events, uint64_t token) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  return ::epoll_ctl(fd_.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool EpollSet::modify(int fd, uint32_t events, uint64_t token) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  return ::epoll_ctl(fd_.get(), EPOLL_CTL_MOD, fd, &ev) == 0;
}

void EpollSet::remove(int fd) noexcept { ::epoll_ctl(fd_.get(), EPOLL_CTL_DEL, fd, nullptr); }

int EpollSet::wait(std::span<epoll_event> out, int timeout_ms) noexcept {
  const int n = ::epoll_wait(fd_.get(), out.data(), static_cast<int>(out.size()), timeout_ms);
  return n < 0 ? 0 : n;
}

}  // namespace forkvm::vsock
