// read_text: the whole content of a file, for tests that compare files byte for byte.
#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>

namespace forkvm::test {

/// Reads a whole file as bytes (throws std::runtime_error when it cannot be opened).
inline std::string read_text(const std::string& path) {
  // stdio rather than istreambuf_iterator, which trips -Wnull-dereference in GCC 12 at -O2.
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot read " + path);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

}  // namespace forkvm::test
