#include "net/io_thread.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <openssl/ssl.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <exception>
#include <thread>

#include "base/thread_filter.hpp"

namespace forkvm::net {
namespace {

thread_local bool t_on_io_thread = false;

/// The network thread's system calls besides the common ones (base/thread_filter.hpp). It parses
/// what guests send (HTTP requests, TLS) and the answers of the hosts they reach, so it is
/// filtered like a device worker:
/// - Asio's reactor: epoll, its timerfd and eventfd (made when the first socket registers,
///   which may be on this thread);
/// - sockets: Unix (the egress proxies' and exposed ports' listeners and their connections into
///   the guest's vsock), IPv4 and IPv6 (the upstreams): connect, accept, the options Asio sets
///   and reads, data (recvmsg/sendmsg for buffer sequences), shutdown; FIONBIO and FIONREAD;
/// - OpenSSL: getrandom for keys and TLS, and reading its trust store (loaded when the first
///   upstream TLS connection needs it; an issuer not found there is looked up in the
///   certificate directories, which OpenSSL 3's store loader lists: getdents64).
/// No process or thread creation, no exec, no file writes. Name lookups (getaddrinfo) run on
/// the resolver thread, under a filter of its own (net/name_resolver.cpp).
const ThreadFilter& network_filter() {
  static const ThreadFilter filter(
      "network",
      {SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_create1),
       SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime), SCMP_SYS(eventfd2),
       SCMP_SYS(connect), SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(bind), SCMP_SYS(listen),
       SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
       SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg),
       SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(shutdown), SCMP_SYS(fcntl), SCMP_SYS(poll),
       SCMP_SYS(ppoll), SCMP_SYS(getrandom), SCMP_SYS(newfstatat), SCMP_SYS(fstat),
       SCMP_SYS(lseek), SCMP_SYS(getdents64)},
      {FIONBIO, FIONREAD},
      {.socket_families = {AF_UNIX, AF_INET, AF_INET6}, .read_only_opens = true});
  return filter;
}

// The context outlives every handler: it is stopped and joined when the process exits (after
// main returns, when every sandbox, and with it every proxy, is gone).
class IoThread {
 public:
  IoThread() : guard_(boost::asio::make_work_guard(context_)), thread_([this] { run(); }) {}
  ~IoThread() {
    guard_.reset();
    context_.stop();
    if (thread_.joinable()) thread_.join();
  }
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  boost::asio::io_context& context() noexcept { return context_; }

 private:
  void run() noexcept {
    t_on_io_thread = true;
    // OpenSSL was initialized (its configuration file read) before this thread started:
    // io_context(). Names are resolved on a thread of their own (net/name_resolver.hpp).
    network_filter().install();
    // A handler that throws must not end the thread (every sandbox's network would stop with
    // it): the connection it served is already lost, so the loop goes on.
    for (;;) {
      try {
        context_.run();
        return;  // stopped
      } catch (const std::exception&) {
      } catch (...) {
      }
    }
  }

  boost::asio::io_context context_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

}  // namespace

boost::asio::io_context& io_context() {
  // OpenSSL first, on the calling thread, for two reasons. It reads its configuration file at
  // its first use, which the network thread's filter would refuse. And it registers its exit
  // cleanup then: registered before the IoThread below, the cleanup runs after that thread
  // is joined, so OpenSSL's per-thread state (its error queue) is freed when the thread ends.
  // The other way round LeakSanitizer found that state leaked (unit_egress_offline).
  static const bool openssl_ready = OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr) == 1;
  (void)openssl_ready;  // a failure shows at OpenSSL's next use, as before
  static IoThread thread;
  return thread.context();
}

bool on_io_thread() noexcept { return t_on_io_thread; }

void stop_and_wait(std::function<void()> stop, std::future<void> finished) {
  if (on_io_thread()) {
    stop();
    return;
  }
  boost::asio::post(io_context(), std::move(stop));  // moved: no copy left to hold the state
  finished.wait();
}

}  // namespace forkvm::net
