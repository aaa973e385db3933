#include "bench/scratch_dir.hpp"

#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace forkvm::bench {

ScratchDir::ScratchDir(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  path_ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/forkvm-" + name + "-XXXXXX";
  if (::mkdtemp(path_.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + path_ + ": " + std::strerror(errno));
  }
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::unique_ptr<ScratchDir> scratch_dir(const std::string& bench) {
  try {
    return std::make_unique<ScratchDir>(bench + "-bench");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench %s: %s\n", bench.c_str(), e.what());
    return nullptr;
  }
}

}  // namespace forkvm::bench
