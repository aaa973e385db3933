// ScratchBuffer: no page resident until written, moves, and the mapping gone with the buffer.
#include "base/scratch_buffer.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <new>
#include <utility>
#include <vector>

namespace forkvm {
namespace {

const size_t kPage = static_cast<size_t>(::sysconf(_SC_PAGESIZE));

/// Resident pages of [p, p + size), from mincore().
size_t resident_pages(const uint8_t* p, size_t size) {
  std::vector<unsigned char> vec((size + kPage - 1) / kPage);
  if (::mincore(const_cast<uint8_t*>(p), size, vec.data()) != 0) return static_cast<size_t>(-1);
  size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

TEST(ScratchBuffer, OnlyWrittenPagesAreResident) {
  ScratchBuffer b(1 << 20);
  ASSERT_NE(b.data(), nullptr);
  EXPECT_EQ(b.size(), 1u << 20);
  EXPECT_EQ(b.span().size(), 1u << 20);
  EXPECT_EQ(resident_pages(b.data(), b.size()), 0u);
  b.data()[300 * 1024] = 7;
  b.span()[5] = 1;
  EXPECT_EQ(resident_pages(b.data(), b.size()), 2u);
  EXPECT_EQ(b.data()[300 * 1024], 7);
  EXPECT_EQ(b.data()[4096 * 3], 0);  // unwritten bytes read as zero
}

TEST(ScratchBuffer, MovesAndUnmapsWhenDestroyed) {
  uint8_t* where = nullptr;
  {
    ScratchBuffer a(64 * 1024);
    a.data()[0] = 42;
    where = a.data();
    ScratchBuffer b(std::move(a));
    EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state
    EXPECT_EQ(a.size(), 0u);
    EXPECT_EQ(b.data(), where);
    EXPECT_EQ(b.data()[0], 42);
    ScratchBuffer c(4096);
    c = std::move(b);
    EXPECT_EQ(c.data(), where);
    EXPECT_EQ(c.size(), 64u * 1024);
  }
  unsigned char v = 0;
  EXPECT_NE(::mincore(where, kPage, &v), 0);  // unmapped: ENOMEM
  EXPECT_EQ(errno, ENOMEM);
}

TEST(ScratchBuffer, ZeroSizeIsRefused) {
  EXPECT_THROW(ScratchBuffer(0), std::bad_alloc);
}

}  // namespace
}  // namespace forkvm
