#include "guest-init/exit_status.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

namespace forkvm {
namespace {

// Real wait statuses from real children, so the test does not depend on the encoding.
int status_of(void (*body)()) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(99);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(ExitStatus, NormalExit) {
  EXPECT_EQ(exit_status_from_wait(status_of([] { ::_exit(0); })), 0u);
  EXPECT_EQ(exit_status_from_wait(status_of([] { ::_exit(3); })), 3u);
  EXPECT_EQ(exit_status_from_wait(status_of([] { ::_exit(255); })), 255u);
}

TEST(ExitStatus, KilledBySignalIs128PlusSignal) {
  EXPECT_EQ(exit_status_from_wait(status_of([] { ::kill(::getpid(), SIGKILL); })),
            128u + SIGKILL);
  EXPECT_EQ(exit_status_from_wait(status_of([] { ::kill(::getpid(), SIGTERM); })),
            128u + SIGTERM);
}

}  // namespace
}  // namespace forkvm
