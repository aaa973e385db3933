// For tests of what is kept in the stamp cache (vmm/stamp_cache.hpp): pointing it at a
// directory of the test's, and file stamps of a chosen age.
#pragma once

#include <stdlib.h>
#include <time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "vmm/file_stamp.hpp"

namespace forkvm::test {

/// Points the stamp cache at `dir` ("off" turns it off) while it lives, and back after.
class StampCacheFor {
 public:
  explicit StampCacheFor(std::string dir) : dir_(std::move(dir)) {
    if (const char* old = std::getenv("FORKVM_STAMP_CACHE")) old_ = old;
    ::setenv("FORKVM_STAMP_CACHE", dir_.c_str(), 1);
  }
  ~StampCacheFor() {
    if (old_) {
      ::setenv("FORKVM_STAMP_CACHE", old_->c_str(), 1);
    } else {
      ::unsetenv("FORKVM_STAMP_CACHE");
    }
  }
  StampCacheFor(const StampCacheFor&) = delete;
  StampCacheFor& operator=(const StampCacheFor&) = delete;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::optional<std::string> old_;
};

/// CLOCK_REALTIME now, which file times follow.
inline struct timespec realtime_now() {
  struct timespec t {};
  ::clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

/// The stamp of a file `size` bytes long on device 1 with inode `ino`, whose times are `age_s`
/// seconds before now.
inline FileStamp aged_stamp(uint64_t ino, int64_t age_s, uint64_t size) {
  FileStamp s;
  s.dev = 1;
  s.ino = ino;
  s.size = size;
  s.mtime_s = s.ctime_s = realtime_now().tv_sec - age_s;
  return s;
}

}  // namespace forkvm::test
