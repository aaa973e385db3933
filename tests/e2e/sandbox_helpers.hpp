// Helpers shared by the e2e tests that drive a Sandbox: a shell command that must succeed, the
// host's wall clock, and the check that the background process a test started is still alive.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "forkvm/sandbox.hpp"

namespace forkvm::e2e {

/// Runs `script` with /bin/sh -c, expects exit 0 (a failure names the script and its stderr),
/// and returns its stdout.
inline std::string sh(Sandbox& box, const std::string& script) {
  const ExecResult r = box.exec_shell(script);
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

}  // namespace forkvm::e2e
