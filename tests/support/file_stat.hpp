// fstat helpers for tests that check memory files (memfds, layers, snapshot memory): a failed
// fstat is a test failure naming the descriptor, and the bytes a sparse file really holds.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdint>

namespace forkvm::test {

/// fstat(fd), expecting it to work.
inline struct stat stat_of(int fd) {
  struct stat st {};
  EXPECT_EQ(fstat(fd, &st), 0) << "fstat(" << fd << ")";
  return st;
}

/// Bytes a file really holds (memfds are sparse: only written pages are allocated).
inline uint64_t allocated_bytes(int fd) {
  return static_cast<uint64_t>(stat_of(fd).st_blocks) * 512;
}

}  // namespace forkvm::test
