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

#include <malloc.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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

/// The malloc arenas this process has (one <heap> per arena in malloc_info()'s report).
size_t malloc_arenas() {
  char* text = nullptr;
  size_t size = 0;
  FILE* f = ::open_memstream(&text, &size);
  if (f == nullptr) return 0;
  ::malloc_info(0, f);
  std::fclose(f);
  size_t n = 0;
  for (std::string_view rest(text, size); rest.find("<heap nr=") != std::string_view::npos; ++n) {
    rest.remove_prefix(rest.find("<heap nr=") + 1);
  }
  std::free(text);
  return n;
}

/// A pointer the compiler must assume is used, so that a malloc/free pair stays.
void keep(void* p) { asm volatile("" : : "r"(p) : "memory"); }

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

// A kind of thread allowed read-only opens (the network thread: OpenSSL reads its trust store
// lazily) may open for reading, never for writing, creating, truncating or appending.
TEST(ThreadFilter, ReadOnlyOpensOnlyWhenAllowed) {
  static const ThreadFilter filter("test-read-only", {}, {},
                                    {.socket_families = {}, .read_only_opens = true});
  const uint64_t before = denied(SCMP_SYS(openat));
  std::vector<std::pair<int, int>> got;
  on_thread([&] {
    ASSERT_TRUE(filter.install());
    for (const int flags : {O_RDONLY, O_RDONLY | O_CLOEXEC, O_WRONLY, O_RDWR, O_RDONLY | O_CREAT,
                            O_RDONLY | O_TRUNC, O_RDONLY | O_APPEND}) {
      errno = 0;
      const int fd = ::open("/dev/null", flags, 0600);
      got.emplace_back(fd, errno);
      if (fd >= 0) ::close(fd);
    }
  });
  ASSERT_EQ(got.size(), 7u);
  EXPECT_GE(got[0].first, 0);
  EXPECT_GE(got[1].first, 0);
  for (size_t i = 2; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, -1) << "open #" << i;
    EXPECT_EQ(got[i].second, EPERM) << "open #" << i;
  }
  EXPECT_EQ(denied(SCMP_SYS(openat)), before + 5);
}

TEST(ThreadFilter, UnixSocketsOnlyAndIoctlByRequest) {
  static const ThreadFilter filter("test-unix", {}, {0x5401 /* TCGETS */},
                                    {.socket_families = {AF_UNIX}});
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

// glibc attaches a thread to a malloc arena at its first allocation, and the first thread that
// needs a new arena once more than 8 exist (none free) computes the process's arena limit from
// the CPU count: openat of /sys/devices/system/cpu/online and /proc/stat, sched_getaffinity.
// `forkvm-bench soak` caught a vCPU thread doing that under its filter (three refused calls).
// install() attaches the thread to its arena first. In a fresh process (the limit is computed
// once per process): threads that allocate and stay take arenas 2..9, then a filtered thread
// allocates for the first time.
TEST(ThreadFilterDeathTest, AFilteredThreadsFirstAllocationIsNotRefused) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  static const ThreadFilter filter("test-malloc", {});
  EXPECT_EXIT(
      {
        // The filter's first install() compiles it, allocating on the installing thread: done
        // now, on a thread that ends (its arena is free again for the first holder). The
        // launcher thread is started now too, not by install() once the arenas are set up.
        std::thread([] { filter.install(); }).join();
        std::mutex m;
        std::condition_variable cv;
        bool release = false;
        std::vector<std::thread> holders;
        // Arenas 2..9: one more would have the holder compute the limit (unfiltered).
        while (malloc_arenas() < 9 && holders.size() < 64) {
          bool allocated = false;
          holders.emplace_back([&] {
            void* p = std::malloc(64);
            keep(p);
            std::unique_lock lock(m);
            allocated = true;
            cv.notify_all();
            cv.wait(lock, [&] { return release; });
            std::free(p);
          });
          std::unique_lock lock(m);
          cv.wait(lock, [&] { return allocated; });
        }
        const size_t arenas = malloc_arenas();
        uint64_t refused = 0;
        std::thread([&] {
          const uint64_t before = thread_filter_stats().denied_calls;
          if (!filter.install()) std::_Exit(3);
          void* p = std::malloc(64);
          keep(p);
          std::free(p);
          refused = thread_filter_stats().denied_calls - before;
        }).join();
        {
          std::lock_guard lock(m);
          release = true;
        }
        cv.notify_all();
        for (auto& t : holders) t.join();
        std::fprintf(stderr, "arenas %zu, refused %llu\n", arenas, static_cast<unsigned long long>(refused));
        std::_Exit(arenas == 9 && refused == 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "arenas 9, refused 0");
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
