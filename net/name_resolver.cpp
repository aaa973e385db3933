#include "net/name_resolver.hpp"

#include <netdb.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <boost/asio/error.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "base/thread_filter.hpp"
#include "base/thread_launcher.hpp"

namespace forkvm::net {
namespace {

/// The resolver thread's system calls besides the common ones (base/thread_filter.hpp): what
/// glibc's getaddrinfo does on Debian 12.
/// - reading its configuration (nsswitch.conf, hosts, resolv.conf, gai.conf, host.conf) and
///   loading NSS modules other than the built-in files and dns (read-only opens, stat, mmap);
/// - AI_ADDRCONFIG: a netlink socket to list the host's addresses (bind, getsockname,
///   sendto, recvmsg);
/// - DNS: UDP (and TCP for long answers) sockets to the servers of resolv.conf, connect,
///   sendmmsg/sendto, poll, recvfrom, FIONREAD; a Unix socket to nscd, if one runs;
/// - handing the answer to the network thread: Asio's post wakes its reactor (epoll_ctl on the
///   reactor's interrupter, a write to its eventfd).
/// No exec, no file writes, no threads.
const ThreadFilter& resolver_filter() {
  static const ThreadFilter filter(
      "resolver",
      {SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
       SCMP_SYS(setsockopt), SCMP_SYS(getsockopt), SCMP_SYS(sendto), SCMP_SYS(sendmsg),
       SCMP_SYS(sendmmsg), SCMP_SYS(recvfrom), SCMP_SYS(recvmsg), SCMP_SYS(poll), SCMP_SYS(ppoll),
       SCMP_SYS(fcntl), SCMP_SYS(newfstatat), SCMP_SYS(fstat), SCMP_SYS(lseek),
       SCMP_SYS(getrandom), SCMP_SYS(uname), SCMP_SYS(epoll_ctl)},
      {FIONREAD},
      {.socket_families = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK}, .read_only_opens = true});
  return filter;
}

/// getaddrinfo's EAI_* as the error Asio's resolver gives for it.
boost::system::error_code lookup_error(int eai, int saved_errno) {
  namespace error = boost::asio::error;
  switch (eai) {
    case EAI_NONAME:
    case EAI_NODATA: return error::host_not_found;
    case EAI_AGAIN: return error::host_not_found_try_again;
    case EAI_FAIL: return error::no_recovery;
    case EAI_MEMORY: return error::no_memory;
    case EAI_SERVICE: return error::service_not_found;
    case EAI_FAMILY: return error::address_family_not_supported;
    case EAI_SOCKTYPE: return error::socket_type_not_supported;
    case EAI_SYSTEM:
      return boost::system::error_code(saved_errno != 0 ? saved_errno : EIO,
                                       boost::system::system_category());
    default: return error::invalid_argument;
  }
}

ResolvedAddresses addresses_of(const addrinfo* list) {
  ResolvedAddresses out;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    boost::asio::ip::address a;
    if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(sockaddr_in)) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
      boost::asio::ip::address_v4::bytes_type bytes;
      std::memcpy(bytes.data(), &sin->sin_addr, bytes.size());
      a = boost::asio::ip::address_v4(bytes);
    } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(sockaddr_in6)) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
      boost::asio::ip::address_v6::bytes_type bytes;
      std::memcpy(bytes.data(), &sin6->sin6_addr, bytes.size());
      a = boost::asio::ip::address_v6(bytes, sin6->sin6_scope_id);
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  return out;
}

/// One lookup, on the resolver thread.
void run_lookup(const std::string& host,
                const std::function<void(boost::system::error_code, ResolvedAddresses)>& done) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  errno = 0;
  const int eai = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  const int saved_errno = errno;
  if (eai != 0) {
    done(lookup_error(eai, saved_errno), {});
    return;
  }
  ResolvedAddresses found = addresses_of(list);
  ::freeaddrinfo(list);
  if (found.empty()) {
    done(boost::asio::error::host_not_found, {});
    return;
  }
  done({}, std::move(found));
}

/// The thread and its queue. A process-wide object that lives until exit (never destroyed:
/// a lookup may still be running in getaddrinfo then, and its callback posts to the network
/// thread's io_context, which is stopped at exit).
class Resolver {
 public:
  void queue(std::string host,
             std::function<void(boost::system::error_code, ResolvedAddresses)> done) {
    {
      std::lock_guard lock(mu_);
      if (!started_) {
        // From the unfiltered launcher thread: the resolver thread carries its own filter,
        // not its caller's (the network thread's).
        start_thread([this] { run(); }).detach();
        started_ = true;
      }
      jobs_.push_back({std::move(host), std::move(done)});
    }
    cv_.notify_one();
  }

 private:
  struct Job {
    std::string host;
    std::function<void(boost::system::error_code, ResolvedAddresses)> done;
  };

  [[noreturn]] void run() {
    resolver_filter().install();
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !jobs_.empty(); });
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      try {
        run_lookup(job.host, job.done);
      } catch (...) {
        // A callback that throws (out of memory posting the answer) loses that answer only;
        // the thread serves the next lookup.
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;  // guarded by mu_
  bool started_ = false;  // guarded by mu_
};

Resolver& resolver() {
  static Resolver* r = new Resolver();  // never destroyed (see Resolver)
  return *r;
}

}  // namespace

void queue_name_lookup(std::string host,
                       std::function<void(boost::system::error_code, ResolvedAddresses)> done) {
  resolver().queue(std::move(host), std::move(done));
}

}  // namespace forkvm::net
