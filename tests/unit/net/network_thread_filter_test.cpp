// The network thread (net/io_thread.cpp) and the resolver thread (net/name_resolver.cpp) run
// under their own seccomp filters: tests that they are filtered (and the network thread
// refuses what it must not do), and a check after every test of the binary that the proxies,
// exposed ports, TLS interception and name lookups needed nothing outside their lists. Built in
// the ordinary tree only (a sanitizer tree runs its threads unfiltered).
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <future>

#include "base/thread_filter.hpp"
#include "forkvm/host_threads.hpp"
#include "net/io_thread.hpp"
#include "net/name_resolver.hpp"

namespace forkvm::net {
namespace {

// Refusals this binary's tests made on purpose; everything else refused is a missing entry.
std::atomic<uint64_t> g_intended_refusals{0};

class NothingElseRefused : public ::testing::Environment {
 public:
  void TearDown() override {
    const ThreadFilterStats s = thread_filter_stats();
    EXPECT_EQ(s.install_failures, 0u);
    EXPECT_EQ(s.denied_calls, g_intended_refusals.load())
        << "the network thread's filter refused a call the proxy made";
    if (s.denied_calls == g_intended_refusals.load()) return;
    for (const DeniedSystemCall& d : s.denied) {
      ADD_FAILURE() << "refused on a filtered thread: " << d.name << " (" << d.number << ") x"
                    << d.count << " (" << g_intended_refusals.load()
                    << " in all were this binary's own tests)";
    }
  }
};
const auto* const g_env = ::testing::AddGlobalTestEnvironment(new NothingElseRefused);

struct OnNetworkThread {
  bool filtered = false;
  int write_open_errno = 0;
  int netlink_errno = 0;
  int unix_socket = -1;
};

TEST(NetworkThread, RunsFilteredAndRefusesWritesAndOtherSockets) {
  ASSERT_TRUE(thread_filters_enabled());
  const uint64_t before = thread_filter_stats().denied_calls;
  std::promise<OnNetworkThread> done;
  boost::asio::post(io_context(), [&done] {
    OnNetworkThread r;
    r.filtered = current_thread_filtered();
    errno = 0;
    const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    r.write_open_errno = fd < 0 ? errno : 0;
    if (fd >= 0) ::close(fd);
    errno = 0;
    const int nl = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
    r.netlink_errno = nl < 0 ? errno : 0;
    if (nl >= 0) ::close(nl);
    r.unix_socket = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r.unix_socket >= 0) ::close(r.unix_socket);
    done.set_value(r);
  });
  const OnNetworkThread r = done.get_future().get();
  g_intended_refusals += 2;
  EXPECT_TRUE(r.filtered);
  EXPECT_EQ(r.write_open_errno, EPERM);
  EXPECT_EQ(r.netlink_errno, EPERM);
  EXPECT_GE(r.unix_socket, 0);
  EXPECT_EQ(thread_filter_stats().denied_calls, before + 2);
}

// Names are looked up on the resolver thread (net/name_resolver.hpp), under its own filter;
// "localhost" comes from /etc/hosts through glibc's NSS, with AI_ADDRCONFIG's netlink query.
TEST(NameResolver, ResolvesOnItsOwnFilteredThread) {
  struct Answer {
    boost::system::error_code ec;
    ResolvedAddresses found;
    bool filtered = false;
  };
  std::promise<Answer> done;
  queue_name_lookup("localhost", [&done](boost::system::error_code ec, ResolvedAddresses found) {
    done.set_value({ec, std::move(found), current_thread_filtered()});
  });
  auto answer = done.get_future();
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  const Answer a = answer.get();
  EXPECT_TRUE(a.filtered);
  ASSERT_FALSE(a.ec) << a.ec.message();
  ASSERT_FALSE(a.found.empty());
  for (const auto& address : a.found) EXPECT_TRUE(address.is_loopback()) << address.to_string();
}

}  // namespace
}  // namespace forkvm::net
