// Running out of descriptors: errno_text() says what to raise, and raise_open_file_limit()
// raises it. The exhaustion runs in a child process, so this test binary keeps its own limit.
#include "forkvm/process_limits.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "base/event_fd.hpp"
#include "base/text.hpp"

namespace forkvm {
namespace {

TEST(ErrnoText, RunningOutOfDescriptorsSaysWhatToRaise) {
  EXPECT_NE(errno_text(EMFILE).find("RLIMIT_NOFILE"), std::string::npos) << errno_text(EMFILE);
  EXPECT_NE(errno_text(EMFILE).find("raise_open_file_limit"), std::string::npos);
  EXPECT_NE(errno_text(ENFILE).find("fs.file-max"), std::string::npos) << errno_text(ENFILE);
  EXPECT_EQ(errno_text(ENOENT), std::strerror(ENOENT));
}

// The child's outcome, as its exit status.
enum ChildResult { kOk = 0, kNoLowLimit = 10, kNeverRanOut, kMessageSilent, kNotRaised, kStillOut };

ChildResult exhaust_then_raise() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return kNoLowLimit;
  const rlim_t hard = limit.rlim_max;
  // A few descriptors above what is open now (stdio, gtest's): exhausted within a few dozen.
  limit.rlim_cur = 64;
  if (limit.rlim_cur > hard || ::setrlimit(RLIMIT_NOFILE, &limit) != 0) return kNoLowLimit;
  std::vector<EventFd> held;
  std::string message;
  try {
    for (int i = 0; i < 100; ++i) held.emplace_back();
    return kNeverRanOut;
  } catch (const EventFdError& e) {
    // Two descriptors back first: UBSan's vptr check of the call below probes memory through
    // a pipe, which it cannot make with none left (a false report in the ASan+UBSan tree).
    for (int i = 0; i < 2 && !held.empty(); ++i) held.pop_back();
    message = e.what();
  }
  if (message.find("RLIMIT_NOFILE") == std::string::npos) return kMessageSilent;
  if (raise_open_file_limit() != hard) return kNotRaised;
  try {
    for (int i = 0; i < 10; ++i) held.emplace_back();
  } catch (const EventFdError&) {
    return kStillOut;
  }
  return kOk;
}

TEST(ProcessLimits, AnExhaustedLimitIsNamedInTheErrorAndCanBeRaised) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(exhaust_then_raise());
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kOk)
      << "10: cannot lower the limit, 11: never ran out, 12: the error does not name "
         "RLIMIT_NOFILE, 13: not raised to the hard limit, 14: still out after raising";
}

TEST(ProcessLimits, RaisingIsIdempotent) {
  const uint64_t first = raise_open_file_limit();
  EXPECT_EQ(raise_open_file_limit(), first);
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(limit.rlim_cur, limit.rlim_max);
}

}  // namespace
}  // namespace forkvm
