// ThreadFilter: a thread that installs a filter gets EPERM for a call outside its list, the
// refusal is counted per system call, and the process (this test binary) lives on; the filter
// is the installing thread's only; threads a filtered thread starts through start_thread() do
// not inherit it; turning the filters off installs nothing.
#include "base/thread_filter.hpp"

#include <fcntl.h>
#include <seccomp.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <functional>
#include <thread>

#include "base/thread_launcher.hpp"
#include "forkvm/host_threads.hpp"

namespace forkvm {
namespace {

/// Runs `body` on a new thread and waits for it.
void on_thread(const std::function<void()>& body) { std::thread(body).join(); }

uint64_t denied(int nr) {
  for (const DeniedSystemCall& d : thread_filter_stats().denied) {
    if (d.number == nr) return d.count;
  }
  return 0;
}

/// socket(2)'s result and errno, closing a descriptor it made.
std::pair<int, int> try_socket(int family) {
  errno = 0;
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int err = errno;
  if (fd >= 0) ::close(fd);
  return {fd, err};
}

TEST(ThreadFilter, ForbiddenCallFailsWithEpermAndIsCountedProcessLives) {
  static const ThreadFilter filter("test-plain", {});
  const uint64_t before = denied(SCMP_SYS(socket));
  const uint64_t threads_before = thread_filter_stats().threads_filtered;
  std::pair<int, int> got{};
  bool write_ok = false;
  on_thread([&] {
    ASSERT_TRUE(filter.install());
    EXPECT_TRUE(current_thread_filtered());
    got = try_socket(AF_INET);
    // A second refusal of the same call: counted again (logged once only).
    try_socket(AF_UNIX);
    // What is listed still works (write is one of the common calls).
    write_ok = ::write(STDERR_FILENO, "", 0) == 0;
  });
  EXPECT_EQ(got.first, -1);
  EXPECT_EQ(got.second, EPERM);
  EXPECT_TRUE(write_ok);
  EXPECT_EQ(denied(SCMP_SYS(socket)), before + 2);
  const ThreadFilterStats s = thread_filter_stats();
  EXPECT_EQ(s.threads_filtered, threads_before + 1);
  EXPECT_GE(s.denied_calls, 2u);
  bool named = false;
  for (const DeniedSystemCall& d : s.denied) named |= d.number == SCMP_SYS(socket) && d.name == "socket";
  EXPECT_TRUE(named);
  // This thread never installed one.
  EXPECT_FALSE(current_thread_filtered());
  EXPECT_GE(try_socket(AF_UNIX).first, 0);
}

// glibc's malloc sizes its arenas once per process, with get_nprocs(), on whichever thread first
// needs a new arena, which may be a filtered one: it reads /sys and /proc read-only, then falls
// back to sched_getaffinity. On a filtered thread that gives a count, and nothing is refused
// (CI logs once showed a vsock thread's openat and sched_getaffinity refused).
TEST(ThreadFilter, GlibcCountingProcessorsIsNotRefused) {
  static const ThreadFilter filter("test-nprocs", {});
  const uint64_t open_before = denied(SCMP_SYS(openat));
  const uint64_t affinity_before = denied(SCMP_SYS(sched_getaffinity));
  int filtered_count = 0;
  on_thread([&] {
    ASSERT_TRUE(filter.install());
    filtered_count = get_nprocs();
  });
  EXPECT_GE(filtered_count, 1);
  EXPECT_EQ(denied(SCMP_SYS(openat)), open_before);
  EXPECT_EQ(denied(SCMP_SYS(sched_getaffinity)), affinity_before);
}

// Any other openat is still refused, counted and logged.
TEST(ThreadFilter, OtherOpensAreRefusedAndCounted) {
  static const ThreadFilter filter("test-open", {});
  const uint64_t before = denied(SCMP_SYS(openat));
  std::pair<int, int> got{};
  on_thread([&] {
    ASSERT_TRUE(filter.install());
    errno = 0;
    const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    got = {fd, errno};
    if (fd >= 0) ::close(fd);
  });
  EXPECT_EQ(got.first, -1);
  EXPECT_EQ(got.second, EPERM);
  EXPECT_EQ(denied(SCMP_SYS(openat)), before + 1);
}

TEST(ThreadFilter, UnixSocketsOnlyAndIoctlByRequest) {
  static const ThreadFilter filter("test-unix", {}, {0x5401 /* TCGETS */}, /*unix_sockets=*/true);
  std::pair<int, int> unix_socket{}, inet_socket{};
  int other_ioctl_err = 0;
  long listed_ioctl = 0;
  on_thread([&] {
    ASSERT_TRUE(filter.install());
    unix_socket = try_socket(AF_UNIX);
    inet_socket = try_socket(AF_INET6);
    // Through syscall(2): TCGETS on a non-tty is ENOTTY (executed), FIONREAD (0x541B) refused.
    listed_ioctl = ::syscall(SYS_ioctl, STDIN_FILENO, 0x5401UL, nullptr);
    const int listed_err = errno;
    if (listed_ioctl != 0) listed_ioctl = -listed_err;
    int n = 0;
    errno = 0;
    if (::syscall(SYS_ioctl, STDIN_FILENO, 0x541BUL, &n) != 0) other_ioctl_err = errno;
  });
  EXPECT_GE(unix_socket.first, 0);
  EXPECT_EQ(inet_socket.first, -1);
  EXPECT_EQ(inet_socket.second, EPERM);
  EXPECT_NE(listed_ioctl, -EPERM);
  EXPECT_EQ(other_ioctl_err, EPERM);
}

TEST(ThreadFilter, ThreadsStartedFromAFilteredThreadAreNotFiltered) {
  static const ThreadFilter filter("test-parent", {});
  std::pair<int, int> child{};
  bool child_filtered = true;
  on_thread([&] {
    ASSERT_TRUE(filter.install());
    std::thread t = start_thread([&] {
      child_filtered = current_thread_filtered();
      child = try_socket(AF_UNIX);
    });
    t.join();
  });
  EXPECT_FALSE(child_filtered);
  EXPECT_GE(child.first, 0) << "errno " << child.second;
}

TEST(ThreadFilter, TurnedOffInstallsNothing) {
  static const ThreadFilter filter("test-off", {});
  set_thread_filters_enabled(false);
  EXPECT_FALSE(thread_filter_stats().enabled);
  bool installed = true;
  std::pair<int, int> got{};
  on_thread([&] {
    installed = filter.install();
    got = try_socket(AF_INET);
  });
  set_thread_filters_enabled(true);
  EXPECT_FALSE(installed);
  EXPECT_GE(got.first, 0) << "errno " << got.second;
  EXPECT_TRUE(thread_filter_stats().enabled);
}

}  // namespace
}  // namespace forkvm
