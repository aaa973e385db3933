// A private temporary directory for socket files, removed with its contents.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace forkvm::vsock::testing {

class TestDir {
 public:
  TestDir() {
    std::string tmpl = "/tmp/fvsock-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TestDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;
  /// `name` inside the directory.
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace forkvm::vsock::testing
