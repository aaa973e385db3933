// GuestMemory backed by files: create_memfd (MAP_SHARED, the file is the RAM) and map_private
// (MAP_PRIVATE copy-on-write over a snapshot memory file or a memfd).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/fd.hpp"
#include "forkvm/errors.hpp"
#include "memory/guest_memory.hpp"
#include "memory/layout.hpp"

namespace forkvm {
namespace {

constexpr uint64_t kCowRamSize = 16 * layout::kMiB;

uint64_t pread_u64(int fd, uint64_t offset) {
  uint64_t v = 0;
  EXPECT_EQ(pread(fd, &v, sizeof v, static_cast<off_t>(offset)), static_cast<ssize_t>(sizeof v));
  return v;
}

void pwrite_u64(int fd, uint64_t offset, uint64_t v) {
  ASSERT_EQ(pwrite(fd, &v, sizeof v, static_cast<off_t>(offset)), static_cast<ssize_t>(sizeof v));
}

TEST(GuestMemoryFile, AnonymousHasNoBackingFile) {
  auto mem = GuestMemory::create_anonymous(kCowRamSize);
  EXPECT_EQ(mem.backing_fd(), -1);
  EXPECT_EQ(mem.backing(), GuestMemory::Backing::kAnonymous);
}

TEST(GuestMemoryFile, ReservedRamTakesAnImageInPlace) {
  // A VM shell's RAM: address space at fixed host addresses, then an image mapped over it.
  auto source = GuestMemory::create_memfd(kCowRamSize);
  source.write_obj<uint64_t>(0x5000, 0x1122334455667788ull);
  const auto image = source.freeze();
  auto mem = GuestMemory::reserve(kCowRamSize);
  EXPECT_EQ(mem.backing(), GuestMemory::Backing::kReserved);
  const uint8_t* host = mem.regions()[0].host;
  EXPECT_TRUE(mem.private_extents().empty());
  EXPECT_THROW(mem.freeze(), GuestMemoryError) << "a reservation holds no RAM to freeze";
  mem.map_image_over(image);
  EXPECT_EQ(mem.regions()[0].host, host) << "the memory slots' addresses do not move";
  EXPECT_EQ(mem.backing(), GuestMemory::Backing::kPrivateFile);
  EXPECT_EQ(mem.read_obj<uint64_t>(0x5000), 0x1122334455667788ull);
  mem.write_obj<uint64_t>(0x5000, 7);  // copy-on-write: the image keeps its page
  EXPECT_EQ(source.read_obj<uint64_t>(0x5000), 0x1122334455667788ull);
  EXPECT_EQ(mem.private_extents().size(), 1u);
}

TEST(GuestMemoryFile, MapImageOverRefusesAWrongSizeOrRamInUse) {
  auto source = GuestMemory::create_memfd(kCowRamSize);
  const auto image = source.freeze();
  auto other_size = GuestMemory::reserve(2 * kCowRamSize);
  EXPECT_THROW(other_size.map_image_over(image), ConfigError);
  EXPECT_EQ(other_size.backing(), GuestMemory::Backing::kReserved) << "refused before mapping";
  auto in_use = GuestMemory::create_anonymous(kCowRamSize);
  EXPECT_THROW(in_use.map_image_over(image), ConfigError);
  auto reserved = GuestMemory::reserve(kCowRamSize);
  EXPECT_THROW(reserved.map_image_over(nullptr), ConfigError);
}

TEST(GuestMemoryFile, MemfdWritesReachTheFile) {
  auto mem = GuestMemory::create_memfd(kCowRamSize);
  ASSERT_GE(mem.backing_fd(), 0);
  EXPECT_EQ(mem.backing(), GuestMemory::Backing::kSharedFile);
  EXPECT_EQ(lseek(mem.backing_fd(), 0, SEEK_END), static_cast<off_t>(kCowRamSize));
  mem.write_obj<uint64_t>(0x2000, 0xabcdef0123456789ull);
  EXPECT_EQ(pread_u64(mem.backing_fd(), 0x2000), 0xabcdef0123456789ull);
  // And the other way round: the file is the RAM.
  pwrite_u64(mem.backing_fd(), 0x3000, 42);
  EXPECT_EQ(mem.read_obj<uint64_t>(0x3000), 42u);
  // Sealed: nobody can truncate it under a mapping.
  EXPECT_LT(ftruncate(mem.backing_fd(), 4096), 0);
}

TEST(GuestMemoryFile, MemfdAboveFourGiBLivesBackToBack) {
  // 3 GiB + 8 KiB: the second region (GPA 4 GiB) starts at file offset 3 GiB. Sparse, so cheap.
  const uint64_t size = layout::kMmioHoleStart + 2 * layout::kPageSize;
  auto mem = GuestMemory::create_memfd(size);
  ASSERT_EQ(mem.regions().size(), 2u);
  EXPECT_EQ(mem.regions()[1].gpa, layout::kMmioHoleEnd);
  EXPECT_EQ(mem.regions()[1].file_offset, layout::kMmioHoleStart);
  mem.write_obj<uint64_t>(layout::kMmioHoleEnd + 8, 0x55);
  EXPECT_EQ(pread_u64(mem.backing_fd(), layout::kMmioHoleStart + 8), 0x55u);

  auto priv = GuestMemory::map_private(mem.backing_fd(), size);
  EXPECT_EQ(priv.read_obj<uint64_t>(layout::kMmioHoleEnd + 8), 0x55u);
}

TEST(GuestMemoryFile, PrivateMappingSeesTheFileButKeepsItsWrites) {
  auto src = GuestMemory::create_memfd(kCowRamSize);
  src.write_obj<uint64_t>(0x1000, 1111);
  src.write_obj<uint64_t>(kCowRamSize - 8, 2222);

  auto a = GuestMemory::map_private(src.backing_fd(), kCowRamSize);
  auto b = GuestMemory::map_private(src.backing_fd(), kCowRamSize);
  EXPECT_EQ(a.backing(), GuestMemory::Backing::kPrivateFile);
  EXPECT_EQ(a.read_obj<uint64_t>(0x1000), 1111u);  // file content visible
  EXPECT_EQ(a.read_obj<uint64_t>(kCowRamSize - 8), 2222u);

  a.write_obj<uint64_t>(0x1000, 9999);
  EXPECT_EQ(a.read_obj<uint64_t>(0x1000), 9999u);
  EXPECT_EQ(pread_u64(src.backing_fd(), 0x1000), 1111u);  // not in the file
  EXPECT_EQ(src.read_obj<uint64_t>(0x1000), 1111u);       // nor in the shared mapping
  EXPECT_EQ(b.read_obj<uint64_t>(0x1000), 1111u);         // nor in a sibling

  b.write_obj<uint64_t>(0x1000, 7777);
  EXPECT_EQ(a.read_obj<uint64_t>(0x1000), 9999u);
  EXPECT_EQ(b.read_obj<uint64_t>(0x1000), 7777u);
}

TEST(GuestMemoryFile, PrivateMappingOwnsItsDescriptor) {
  auto src = GuestMemory::create_memfd(kCowRamSize);
  src.write_obj<uint64_t>(0, 31337);
  Fd dup(fcntl(src.backing_fd(), F_DUPFD_CLOEXEC, 0));
  auto priv = GuestMemory::map_private(dup.get(), kCowRamSize);
  dup.reset();
  EXPECT_NE(priv.backing_fd(), -1);
  EXPECT_EQ(pread_u64(priv.backing_fd(), 0), 31337u);
  GuestMemory moved = std::move(priv);
  EXPECT_EQ(priv.backing_fd(), -1);  // NOLINT(bugprone-use-after-move): defined moved-from state
  EXPECT_EQ(moved.read_obj<uint64_t>(0), 31337u);
}

// The documented contract: pages a private mapping has not written still come from the file.
TEST(GuestMemoryFile, UnwrittenPrivatePagesFollowTheFile) {
  auto src = GuestMemory::create_memfd(kCowRamSize);
  auto priv = GuestMemory::map_private(src.backing_fd(), kCowRamSize);
  priv.write_obj<uint64_t>(0x4000, 1);  // copied
  src.write_obj<uint64_t>(0x4000, 2);
  src.write_obj<uint64_t>(0x8000, 3);   // not copied by priv
  EXPECT_EQ(priv.read_obj<uint64_t>(0x4000), 1u);
  EXPECT_EQ(priv.read_obj<uint64_t>(0x8000), 3u);
}

TEST(GuestMemoryFile, MapPrivateOfARegularFile) {
  char path[] = "/tmp/forkvm-memfile-XXXXXX";
  Fd fd(mkstemp(path));
  ASSERT_TRUE(fd);
  unlink(path);
  ASSERT_EQ(ftruncate(fd.get(), static_cast<off_t>(kCowRamSize)), 0);
  pwrite_u64(fd.get(), 0x10, 0x1234);
  auto mem = GuestMemory::map_private(fd.get(), kCowRamSize);
  EXPECT_EQ(mem.read_obj<uint64_t>(0x10), 0x1234u);
  mem.write_obj<uint64_t>(0x10, 0x4321);
  EXPECT_EQ(pread_u64(fd.get(), 0x10), 0x1234u);
}

TEST(GuestMemoryFile, RejectsShortFilesAndNonFiles) {
  auto src = GuestMemory::create_memfd(kCowRamSize);
  EXPECT_THROW(GuestMemory::map_private(src.backing_fd(), kCowRamSize + layout::kPageSize),
               SnapshotError);
  EXPECT_THROW(GuestMemory::map_private(-1, kCowRamSize), SnapshotError);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  Fd r(pipe_fds[0]), w(pipe_fds[1]);
  EXPECT_THROW(GuestMemory::map_private(r.get(), kCowRamSize), SnapshotError);
  EXPECT_THROW(GuestMemory::map_private(src.backing_fd(), 4097), ConfigError);
  EXPECT_THROW(GuestMemory::map_private(src.backing_fd(), 0), ConfigError);
  EXPECT_THROW(GuestMemory::create_memfd(4097), ConfigError);
  // A smaller RAM than the file is fine (the tail is simply not mapped).
  EXPECT_NO_THROW(GuestMemory::map_private(src.backing_fd(), kCowRamSize / 2));
}

}  // namespace
}  // namespace forkvm
