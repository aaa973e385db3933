// Helpers shared by the initramfs tests: running shell commands (the scratch directory and
// read_text() are in tests/support/).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/read_text.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::test {

/// Output and exit status of a shell command.
struct CommandResult {
  int status;          ///< exit status, or -1 when it did not exit normally
  std::string output;  ///< stdout (and stderr when the command redirects it)
};

/// Runs `command` with /bin/sh and captures its stdout.
inline CommandResult run(const std::string& command) {
  CommandResult r{-1, {}};
  std::FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

/// Writes bytes to a file (throws on failure).
inline void write_bytes(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

/// The lines of `text`, without the newlines.
inline std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace forkvm::test
