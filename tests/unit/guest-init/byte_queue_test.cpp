// ByteQueue: the relay's bounded per-direction buffer.
#include "guest-init/byte_queue.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace forkvm::relay {
namespace {

std::string drain(ByteQueue& q, std::size_t max_step = SIZE_MAX) {
  std::string out;
  for (int guard = 0; guard < 100000 && !q.empty(); ++guard) {
    const auto area = q.read_area();
    const std::size_t n = std::min(area.size(), max_step);
    out.append(area.data(), n);
    q.consume(n);
  }
  return out;
}

TEST(ByteQueue, NeverHoldsMoreThanItsCapacity) {
  ByteQueue q(40000);  // not a multiple of the chunk size
  std::string data(100000, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  EXPECT_EQ(q.append(data), 40000u);
  EXPECT_TRUE(q.full());
  EXPECT_TRUE(q.write_area().empty());
  EXPECT_EQ(q.append("more"), 0u);
  EXPECT_EQ(drain(q, 1000), data.substr(0, 40000));
  EXPECT_TRUE(q.empty());
}

TEST(ByteQueue, InterleavedWritesAndReadsKeepOrder) {
  ByteQueue q(3 * ByteQueue::kChunkBytes);
  std::string in, out;
  std::size_t counter = 0;
  for (int round = 0; round < 200; ++round) {
    // Receive into write_area() like recv() would, a few odd-sized pieces per round.
    for (int k = 0; k < 3; ++k) {
      const auto area = q.write_area();
      const std::size_t n = std::min<std::size_t>(area.size(), 5000 + 13 * static_cast<std::size_t>(round));
      for (std::size_t i = 0; i < n; ++i) area[i] = static_cast<char>(counter++ % 251);
      in.append(area.data(), n);
      q.commit(n);
      ASSERT_LE(q.size(), q.capacity());
    }
    out += drain(q, 7000);
  }
  EXPECT_EQ(out, in);
}

TEST(ByteQueue, TrimOnlyDropsEmptyStorage) {
  ByteQueue q(100);
  (void)q.write_area();  // a recv() that got nothing
  q.commit(0);
  q.trim();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.append("abc"), 3u);
  q.trim();  // not empty: nothing happens
  EXPECT_EQ(drain(q), "abc");
}

}  // namespace
}  // namespace forkvm::relay
