// unit tier: hash_memory_file() skips holes with SEEK_DATA/SEEK_HOLE but must hash exactly what
// reading the file would give, and refuses a file shorter than the size asked for.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "forkvm/errors.hpp"
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

}  // namespace
}  // namespace forkvm::snapshot
