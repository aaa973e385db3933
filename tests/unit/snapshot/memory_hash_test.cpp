// unit tier: hash_memory_file() skips holes with SEEK_DATA/SEEK_HOLE but must hash exactly what
// reading the file would give, and refuses a file shorter than the size asked for.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <vector>

#include "forkvm/errors.hpp"
#include "snapshot/memory_digest.hpp"
#include "tests/unit/snapshot/snapshot_fixture.hpp"

namespace forkvm::snapshot {
namespace {

using namespace test;

std::string dense_hash(const std::string& content) { return Sha256::of(std::string_view(content)); }

TEST(MemoryHash, SparseFileHashesLikeItsBytes) {
  TempDir t;
  const fs::path p = t.path() / "mem";
  // Holes at the start, between data runs (one not page-aligned), and at the end.
  const uint64_t size = 5u << 20;
  std::string content(size, '\0');
  const int fd = ::open(p.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  for (const uint64_t off : {uint64_t{1} << 20, uint64_t{(2u << 20) + 123}, uint64_t{3u << 20}}) {
    const std::string data(10000, static_cast<char>('a' + off % 23));
    ASSERT_EQ(pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)),
              static_cast<ssize_t>(data.size()));
    content.replace(off, data.size(), data);
  }
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
  EXPECT_EQ(hash_memory_file(fd, size, p), dense_hash(content));
  // A prefix of the file hashes like the prefix of its bytes.
  EXPECT_EQ(hash_memory_file(fd, (2u << 20) + 500, p),
            dense_hash(content.substr(0, (2u << 20) + 500)));
  // Asking for more than the file holds is an error naming the file.
  try {
    hash_memory_file(fd, size + 1, p);
    ADD_FAILURE() << "accepted a short file";
  } catch (const SnapshotError& e) {
    EXPECT_NE(std::string(e.what()).find(p.string() + ": is truncated"), std::string::npos)
        << e.what();
  }
  ::close(fd);
}

TEST(MemoryHash, AllHoleFile) {
  TempDir t;
  const fs::path p = t.path() / "mem";
  const int fd = ::open(p.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 3 << 20), 0);
  EXPECT_EQ(hash_memory_file(fd, 3 << 20, p), dense_hash(std::string(3 << 20, '\0')));
  EXPECT_EQ(hash_memory_file(fd, 0, p), dense_hash(""));
  ::close(fd);
}

// ChunkHasher (the writer's chunk digests, format 1.4): data and zeros given in pieces that
// cross chunk boundaries digest like each chunk's bytes; a chunk of zeros only takes the known
// digest; the last chunk may be short; a wrong total is refused.
TEST(MemoryHash, ChunkHasherDigestsEachChunkOfWhatItWasGiven) {
  constexpr uint64_t kChunk = 64 * 1024;
  constexpr uint64_t kTotal = 5 * kChunk + 12288;  // the last chunk is 12 KiB
  std::string bytes(kTotal, '\0');
  for (uint64_t i = kChunk - 100; i < kChunk + 100; ++i) bytes[i] = static_cast<char>(i % 251 + 1);
  for (uint64_t i = 4 * kChunk + 5; i < 4 * kChunk + 9; ++i) bytes[i] = 'x';
  bytes[kTotal - 1] = 'z';
  ChunkHasher h(kTotal, kChunk);
  // Given in uneven pieces: zeros as zeros, the rest as data (zeros inside data are fine too).
  const uint64_t cuts[] = {0, 1000, kChunk - 100, kChunk + 100, 3 * kChunk, 4 * kChunk + 5,
                           4 * kChunk + 9, kTotal - 1, kTotal};
  for (size_t k = 0; k + 1 < std::size(cuts); ++k) {
    const uint64_t a = cuts[k], b = cuts[k + 1];
    if (bytes.find_first_not_of('\0', a) >= b) {
      h.zeros(b - a);
    } else {
      h.data(std::span(reinterpret_cast<const uint8_t*>(bytes.data()) + a, b - a));
    }
  }
  const MemoryChunks c = h.finish();
  EXPECT_EQ(c.size, kChunk);
  ASSERT_EQ(c.sha256.size(), 6u);
  for (uint64_t i = 0; i < 6; ++i) {
    const uint64_t a = i * kChunk, len = std::min(kChunk, kTotal - a);
    EXPECT_EQ(c.sha256[i], dense_hash(bytes.substr(a, len))) << "chunk " << i;
  }
  EXPECT_EQ(c.sha256[2], zero_digest(kChunk));
  EXPECT_EQ(zero_digest(12288), dense_hash(std::string(12288, '\0')));

  ChunkHasher short_of(kTotal, kChunk);
  short_of.zeros(kTotal - 1);
  EXPECT_THROW(short_of.finish(), SnapshotError);
  ChunkHasher over(kTotal, kChunk);
  EXPECT_THROW(over.zeros(kTotal + 1), SnapshotError);
}

}  // namespace
}  // namespace forkvm::snapshot
