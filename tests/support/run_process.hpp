// Runs a shell command line for tests and captures its exit status and output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace forkvm::test {

/// The outcome of run_process().
struct ProcessResult {
  int status = -1;     ///< exit code, or -1 if it did not exit normally
  std::string output;  ///< stdout and stderr together
};

/// Runs `command` through /bin/sh with stderr merged into stdout and stdin from `stdin_path`.
inline ProcessResult run_process(const std::string& command,
                                 const std::string& stdin_path = "/dev/null") {
  ProcessResult r;
  FILE* p = popen((command + " 2>&1 <'" + stdin_path + "'").c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int w = pclose(p);
  r.status = WIFEXITED(w) ? WEXITSTATUS(w) : -1;
  return r;
}

}  // namespace forkvm::test
