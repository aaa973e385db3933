#include "forkvm/process_limits.hpp"

#include <sys/resource.h>

#include <cerrno>
#include <fstream>
#include <string>

#include "base/text.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {

uint64_t raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    throw Error("getrlimit(RLIMIT_NOFILE): " + errno_text(errno));
  }
  rlim_t want = limit.rlim_max;
  if (want == RLIM_INFINITY) {
    // The kernel refuses a soft limit above fs.nr_open, "unlimited" included.
    std::ifstream nr_open("/proc/sys/fs/nr_open");
    unsigned long long v = 0;
    if (nr_open >> v && v > 0) want = static_cast<rlim_t>(v);
  }
  if (limit.rlim_cur >= want) return limit.rlim_cur;  // never lowered
  const rlim_t was = limit.rlim_cur;
  limit.rlim_cur = want;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    throw Error("setrlimit(RLIMIT_NOFILE) from " + std::to_string(was) + " to " +
                std::to_string(want) + ": " + errno_text(errno));
  }
  return limit.rlim_cur;
}

}  // namespace forkvm
