// The vCPU kick signal: forkvm refuses (SignalConflictError) to replace a handler the program
// set on it and leaves that handler in place; another signal can be chosen before the first
// VM starts, and not after. One test: the installation is once per process.
#include <signal.h>

#include <gtest/gtest.h>

#include "forkvm/errors.hpp"
#include "forkvm/host_threads.hpp"
#include "vmm/vcpu_thread.hpp"

namespace forkvm {
namespace {

void embedder_handler(int) {}

struct sigaction query(int signo) {
  struct sigaction sa {};
  sigaction(signo, nullptr, &sa);
  return sa;
}

TEST(KickSignal, ProgramsHandlerIsNotReplacedAndAnotherSignalCanBeChosen) {
  EXPECT_EQ(vcpu_kick_signal(), SIGRTMIN);
  EXPECT_THROW(set_vcpu_kick_signal(SIGINT), ConfigError);
  EXPECT_THROW(set_vcpu_kick_signal(SIGRTMAX + 1), ConfigError);

  // The program owns SIGRTMIN+3.
  const int taken = SIGRTMIN + 3;
  struct sigaction mine {};
  mine.sa_handler = embedder_handler;
  sigemptyset(&mine.sa_mask);
  ASSERT_EQ(sigaction(taken, &mine, nullptr), 0);
  set_vcpu_kick_signal(taken);
  try {
    install_kick_handler();
    FAIL() << "replaced the program's handler";
  } catch (const SignalConflictError& e) {
    EXPECT_EQ(e.signal(), taken);
    EXPECT_NE(std::string(e.what()).find("set_vcpu_kick_signal"), std::string::npos) << e.what();
  }
  EXPECT_EQ(query(taken).sa_handler, embedder_handler);

  // SIG_IGN is the program's choice too.
  const int ignored = SIGRTMIN + 5;
  signal(ignored, SIG_IGN);
  set_vcpu_kick_signal(ignored);
  EXPECT_THROW(install_kick_handler(), SignalConflictError);
  EXPECT_EQ(query(ignored).sa_handler, SIG_IGN);

  // A free one works, and stays for the process.
  const int free_signal = SIGRTMIN + 4;
  set_vcpu_kick_signal(free_signal);
  install_kick_handler();
  EXPECT_EQ(vcpu_kick_signal(), free_signal);
  const struct sigaction installed = query(free_signal);
  EXPECT_NE(installed.sa_handler, SIG_DFL);
  EXPECT_EQ(installed.sa_flags & SA_RESTART, 0);
  install_kick_handler();  // idempotent
  EXPECT_NO_THROW(set_vcpu_kick_signal(free_signal));
  EXPECT_THROW(set_vcpu_kick_signal(SIGRTMIN), InvalidStateError);
  EXPECT_EQ(query(taken).sa_handler, embedder_handler);
}

}  // namespace
}  // namespace forkvm
