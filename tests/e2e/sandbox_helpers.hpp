// Helpers shared by the e2e tests that drive a Sandbox: a shell command that must succeed, the
// host's wall clock, the check that the background process a test started is still alive, and
// the account of a fork that failed.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>

#include "forkvm/host_threads.hpp"
#include "forkvm/sandbox.hpp"
#include "tests/e2e/e2e_image.hpp"

namespace forkvm::e2e {

/// How long sh() lets a command run: every e2e command takes seconds; a command, agent or
/// connection that hangs fails the test well inside kvm-lab's run timeout, with the guest's
/// console, instead of holding it until kvm-lab kills the whole binary.
inline constexpr std::chrono::seconds kShellTimeout{120};

/// How the e2e tests restore a snapshot: the image's boot deadline, 120 s per request (under TCG
/// a syscall-heavy request can take seconds) and the guest's new `hostname`.
inline SandboxRestoreConfig e2e_restore_config(const std::string& hostname) {
  SandboxRestoreConfig rc;
  rc.boot_timeout = kBootDeadline;
  rc.request_timeout = std::chrono::seconds(120);
  rc.hostname = hostname;
  return rc;
}

/// Runs `script` with /bin/sh -c, expects exit 0 (a failure names the script and its stderr),
/// and returns its stdout. The guest kills the script after `limit`; the host gives up on the
/// agent ExecOptions' grace later. Any failure is a test failure (never an exception) that
/// carries the guest's console tail.
inline std::string sh(Sandbox& box, const std::string& script,
                      std::chrono::seconds limit = kShellTimeout) {
  ExecOptions options;
  options.timeout = limit;
  ExecResult r;
  try {
    r = box.exec_shell(script, options);
  } catch (const std::exception& e) {
    ADD_FAILURE() << script << "\nfailed: " << e.what() << "\nconsole tail:\n" << box.console_tail();
    return "";
  }
  EXPECT_FALSE(r.timed_out) << script << " still ran after " << limit.count()
                            << " s\nconsole tail:\n" << box.console_tail();
  EXPECT_EQ(r.exit_code, 0) << script << "\nstderr: " << r.stderr_data;
  return r.stdout_data;
}

/// The host's wall clock in whole seconds since the epoch.
inline long host_seconds() {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());
}

/// A shell check that the background process whose pid is in /tmp/bg.pid is alive; prints its
/// command line (the tests start `sleep 1000`).
inline constexpr const char* kBackgroundAlive =
    "pid=$(cat /tmp/bg.pid) && kill -0 \"$pid\" && tr '\\0' ' ' < /proc/$pid/cmdline";

/// Makes one child with `make` (a Template::fork, Sandbox::fork or Sandbox::restore). When it
/// fails, the failure stands (it is rethrown, never retried), and its message gains a diagnosis:
/// how many of `more` further children made the same way also fail to come up. Many means the
/// image itself is bad; none, something that went wrong in the one child (issue 11's question).
template <class Make>
std::unique_ptr<Sandbox> make_child(Make&& make, int more = 5) {
  try {
    return make();
  } catch (const std::exception& e) {
    int bad = 0;
    std::string first;
    for (int k = 0; k < more; ++k) {
      try {
        make()->shutdown();
      } catch (const std::exception& again) {
        if (bad++ == 0) first = again.what();
      }
    }
    std::string diagnosis = "\n[diagnosis, not a retry: " + std::to_string(bad) + " of " +
                            std::to_string(more) + " more children of the same image failed too";
    if (bad > 0) diagnosis += "; the first: " + first.substr(0, first.find('\n'));
    throw std::runtime_error(e.what() + diagnosis + "]");
  }
}

/// Expects that the vCPU and device threads of this process ran filtered (the default) and that
/// no filter refused a call: every test of the binary before this one worked within the
/// threads' system-call lists (include/forkvm/host_threads.hpp).
inline void expect_threads_filtered_nothing_refused(uint64_t min_threads) {
  const ThreadFilterStats s = thread_filter_stats();
  EXPECT_TRUE(s.enabled);
  EXPECT_GE(s.threads_filtered, min_threads);
  EXPECT_EQ(s.install_failures, 0u);
  EXPECT_EQ(s.denied_calls, 0u);
  for (const DeniedSystemCall& d : s.denied) {
    ADD_FAILURE() << "refused: " << d.name << " (" << d.number << ") x" << d.count;
  }
}

}  // namespace forkvm::e2e
