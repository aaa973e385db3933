#include "base/netns.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <exception>
#include <thread>

namespace forkvm {

NetnsEntry run_in_netns(const std::string& netns, const std::function<void()>& fn) {
  if (netns.empty()) {
    fn();
    return {};
  }
  NetnsEntry entry;
  std::exception_ptr thrown;
  // A thread of its own, joined at once: setns() moves only the calling thread, and this one
  // ends inside the namespace instead of carrying it back to a pool.
  std::thread([&] {
    const int ns = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      entry = {"open the namespace", errno};
      return;
    }
    const int rc = ::setns(ns, CLONE_NEWNET);
    const int err = errno;
    ::close(ns);  // once entered, the namespace lives on without the file
    if (rc != 0) {
      entry = {"setns(CLONE_NEWNET)", err};
      return;
    }
    try {
      fn();
    } catch (...) {
      thrown = std::current_exception();
    }
  }).join();
  if (thrown) std::rethrow_exception(thrown);
  return entry;
}

}  // namespace forkvm
