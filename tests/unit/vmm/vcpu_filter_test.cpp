// The vCPU threads' filter: a vCPU-kind thread cannot open a socket or run a program (EPERM,
// counted, process alive) and can still do what a vCPU thread does outside KVM (eventfds, an
// epoll set for a vsock activation, locks).
#include "vmm/vcpu_filter.hpp"

#include <seccomp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <thread>

#include "base/event_fd.hpp"
#include "forkvm/host_threads.hpp"

namespace forkvm {
namespace {

uint64_t denied(int nr) {
  for (const DeniedSystemCall& d : thread_filter_stats().denied) {
    if (d.number == nr) return d.count;
  }
  return 0;
}

TEST(VcpuFilter, SocketAndExecveAreRefusedWithEperm) {
  const uint64_t sockets = denied(SCMP_SYS(socket));
  const uint64_t execs = denied(SCMP_SYS(execve));
  int socket_err = 0, exec_err = 0;
  bool eventfd_ok = false, epoll_ok = false;
  std::thread([&] {
    ASSERT_TRUE(vcpu_thread_filter().install());
    if (::socket(AF_INET, SOCK_STREAM, 0) < 0) socket_err = errno;
    char* const argv[] = {const_cast<char*>("true"), nullptr};
    char* const envp[] = {nullptr};
    if (::execve("/bin/true", argv, envp) < 0) exec_err = errno;
    // Listed: eventfds and their signals, an epoll set with one of them in it.
    try {
      EventFd e;
      eventfd_ok = e.signal() && e.consume() == 1u;
      const int ep = ::epoll_create1(EPOLL_CLOEXEC);
      epoll_event ev{};
      ev.events = EPOLLIN;
      epoll_ok = ep >= 0 && ::epoll_ctl(ep, EPOLL_CTL_ADD, e.fd(), &ev) == 0;
      if (ep >= 0) ::close(ep);
    } catch (const EventFdError&) {
    }
  }).join();
  EXPECT_EQ(socket_err, EPERM);
  EXPECT_EQ(exec_err, EPERM);
  EXPECT_TRUE(eventfd_ok);
  EXPECT_TRUE(epoll_ok);
  EXPECT_EQ(denied(SCMP_SYS(socket)), sockets + 1);
  EXPECT_EQ(denied(SCMP_SYS(execve)), execs + 1);
}

}  // namespace
}  // namespace forkvm
