// unit tier: virtio-blk requests are validated where they enter (header, direction, lengths,
// sector range at the limits of 64-bit arithmetic, the status byte) and answered with a status;
// random chains never crash the handler or write outside the disk.
#include "devices/virtio/block/request.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "devices/virtio/block/disk_image.hpp"
#include "devices/virtio/block/virtio_blk.hpp"
#include "devices/virtio/block/cow_disk.hpp"
#include "tests/unit/block/block_test_util.hpp"

namespace forkvm::blk {
namespace {

using testing::BlkDriver;
using testing::Buf;
using testing::image_bytes;

constexpr uint64_t kDiskBytes = 1 << 20;  // 2048 sectors

class RequestTest : public ::testing::Test {
 protected:
  void open(bool read_only) {
    disk_.reset();
    disk_.emplace(DiskImage::open(path_, read_only));
    ctx_.memory = &drv_.mem();
    ctx_.disk = &*disk_;
    ctx_.id = "scratch-1";
    ctx_.discard = ctx_.write_zeroes = disk_->can_punch_holes();
    ctx_.counters = &counters_;
  }
  void SetUp() override {
    path_ = testing::make_image(dir_, "disk.img", kDiskBytes);
    open(false);
  }
  uint32_t run(const DescriptorChain& c) { return handle_request(ctx_, c); }

  test::TempDir dir_{"fvblk"};
  std::string path_;
  std::optional<DiskImage> disk_;
  BlkDriver drv_;
  RequestCounters counters_;
  RequestContext ctx_;
};

TEST_F(RequestTest, ReadsAndWritesWholeSectors) {
  EXPECT_EQ(run(drv_.simple(type::kIn, 3, 4096)), 4097u);
  EXPECT_EQ(drv_.status(), status::kOk);
  EXPECT_EQ(drv_.data(4096), image_bytes(3 * 512, 4096));

  drv_.fill(BlkDriver::kData, std::vector<uint8_t>(1024, 0xab));
  EXPECT_EQ(run(drv_.simple(type::kOut, 10, 1024)), 1u);
  EXPECT_EQ(drv_.status(), status::kOk);
  const auto file = testing::file_bytes(path_);
  EXPECT_EQ(std::vector<uint8_t>(file.begin() + 5120, file.begin() + 6144),
            std::vector<uint8_t>(1024, 0xab));
  EXPECT_EQ(std::vector<uint8_t>(file.begin() + 4096, file.begin() + 5120), image_bytes(4096, 1024));
  EXPECT_EQ(counters_.reads, 1u);
  EXPECT_EQ(counters_.writes, 1u);
}

TEST_F(RequestTest, DataSpreadOverManySegments) {
  // Header, data split over three buffers of odd sizes that add up to 3 sectors, status.
  drv_.header(type::kIn, 100);
  const auto c = drv_.chain({{BlkDriver::kHeader, 16, false},
                             {BlkDriver::kData, 700, true},
                             {BlkDriver::kData + 0x10000, 324, true},
                             {BlkDriver::kData + 0x20000, 512, true},
                             {BlkDriver::kStatus, 1, true}});
  EXPECT_EQ(run(c), 1537u);
  EXPECT_EQ(drv_.status(), status::kOk);
  const auto want = image_bytes(100 * 512, 1536);
  EXPECT_EQ(drv_.data(700), std::vector<uint8_t>(want.begin(), want.begin() + 700));
  EXPECT_EQ(drv_.data(324, BlkDriver::kData + 0x10000),
            std::vector<uint8_t>(want.begin() + 700, want.begin() + 1024));
}

TEST_F(RequestTest, SectorRangeIsCheckedAtTheLimits) {
  EXPECT_EQ(run(drv_.simple(type::kIn, 2047, 512)), 513u);  // the last sector
  EXPECT_EQ(drv_.status(), status::kOk);
  for (const uint64_t sector : {uint64_t{2048}, uint64_t{2047} + 0, UINT64_MAX, UINT64_MAX >> 9,
                                (UINT64_MAX >> 9) + 1, uint64_t{1} << 63}) {
    const uint32_t len = sector == 2047 ? 1024 : 512;  // 2047 + 2 sectors runs past the end
    run(drv_.simple(type::kIn, sector, len));
    EXPECT_EQ(drv_.status(), status::kIoErr) << sector;
    run(drv_.simple(type::kOut, sector, len));
    EXPECT_EQ(drv_.status(), status::kIoErr) << sector;
  }
  EXPECT_EQ(testing::file_bytes(path_), image_bytes(0, kDiskBytes));
}

TEST_F(RequestTest, MalformedRequestsGetIoErrAndChangeNothing) {
  // Not whole sectors.
  run(drv_.simple(type::kIn, 0, 500));
  EXPECT_EQ(drv_.status(), status::kIoErr);
  run(drv_.simple(type::kOut, 0, 513));
  EXPECT_EQ(drv_.status(), status::kIoErr);
  // A header cut short (8 readable bytes).
  drv_.header(type::kIn, 0);
  run(drv_.chain({{BlkDriver::kHeader, 8, false}, {BlkDriver::kStatus, 1, true}}));
  EXPECT_EQ(drv_.status(), status::kIoErr);
  // The wrong direction: an IN with readable data, an OUT with writable data.
  drv_.header(type::kIn, 0);
  run(drv_.chain({{BlkDriver::kHeader, 16, false}, {BlkDriver::kData, 512, false},
                  {BlkDriver::kData + 0x1000, 512, true}, {BlkDriver::kStatus, 1, true}}));
  EXPECT_EQ(drv_.status(), status::kIoErr);
  drv_.header(type::kOut, 0);
  run(drv_.chain({{BlkDriver::kHeader, 16, false}, {BlkDriver::kData, 512, true},
                  {BlkDriver::kStatus, 1, true}}));
  EXPECT_EQ(drv_.status(), status::kIoErr);
  // A FLUSH carrying data.
  run(drv_.simple(type::kFlush, 0, 512));
  EXPECT_EQ(drv_.status(), status::kIoErr);
  // No status byte at all: nothing can be answered, nothing is written.
  drv_.header(type::kOut, 0);
  EXPECT_EQ(run(drv_.chain({{BlkDriver::kHeader, 16, false}, {BlkDriver::kData, 512, false}})), 0u);
  EXPECT_EQ(counters_.unanswerable, 1u);
  EXPECT_EQ(counters_.writes, 0u);
  EXPECT_EQ(testing::file_bytes(path_), image_bytes(0, kDiskBytes));
}

TEST_F(RequestTest, UnknownTypesAreUnsupported) {
  for (const uint32_t t : {2u, 3u, 7u, 9u, 12u, 0xffffffffu}) {
    run(drv_.simple(t, 0, 0));
    EXPECT_EQ(drv_.status(), status::kUnsupp) << t;
  }
  ctx_.discard = ctx_.write_zeroes = false;  // not negotiated
  run(drv_.simple(type::kDiscard, 0, 0));
  EXPECT_EQ(drv_.status(), status::kUnsupp);
  EXPECT_EQ(counters_.unsupported, 7u);
}

TEST_F(RequestTest, FlushAndGetId) {
  run(drv_.simple(type::kFlush, 0, 0));
  EXPECT_EQ(drv_.status(), status::kOk);
  EXPECT_EQ(run(drv_.simple(type::kGetId, 0, kIdBytes)), kIdBytes + 1);
  EXPECT_EQ(drv_.status(), status::kOk);
  std::vector<uint8_t> want(kIdBytes, 0);
  const std::string id = "scratch-1";
  std::copy(id.begin(), id.end(), want.begin());
  EXPECT_EQ(drv_.data(kIdBytes), want);
  run(drv_.simple(type::kGetId, 0, 8));  // a buffer too small for the id
  EXPECT_EQ(drv_.status(), status::kIoErr);
}

TEST_F(RequestTest, ReadOnlyDiskRefusesWritesAndStaysUnchanged) {
  open(true);
  EXPECT_FALSE(ctx_.discard);
  drv_.fill(BlkDriver::kData, std::vector<uint8_t>(512, 0xcd));
  run(drv_.simple(type::kOut, 0, 512));
  EXPECT_EQ(drv_.status(), status::kIoErr);
  run(drv_.simple(type::kWriteZeroes, 0, 0));
  EXPECT_EQ(drv_.status(), status::kUnsupp);
  run(drv_.simple(type::kIn, 0, 512));
  EXPECT_EQ(drv_.status(), status::kOk);
  run(drv_.simple(type::kFlush, 0, 0));
  EXPECT_EQ(drv_.status(), status::kOk);
  EXPECT_EQ(testing::file_bytes(path_), image_bytes(0, kDiskBytes));
}

TEST_F(RequestTest, DiscardAndWriteZeroesOneRange) {
  if (!ctx_.discard) GTEST_SKIP() << "the file system of $TMPDIR cannot punch holes";
  auto range_request = [&](uint32_t t, DiscardRange r) {
    drv_.header(t, 0);
    drv_.mem().write_obj(BlkDriver::kData, r);
    drv_.mem().write_obj<uint8_t>(BlkDriver::kStatus, 0xff);
    return run(drv_.chain({{BlkDriver::kHeader, 16, false}, {BlkDriver::kData, 16, false},
                           {BlkDriver::kStatus, 1, true}}));
  };
  range_request(type::kDiscard, {8, 8, 0});
  EXPECT_EQ(drv_.status(), status::kOk);
  range_request(type::kWriteZeroes, {32, 4, 0});
  EXPECT_EQ(drv_.status(), status::kOk);
  range_request(type::kWriteZeroes, {40, 4, kDiscardFlagUnmap});
  EXPECT_EQ(drv_.status(), status::kOk);
  const auto file = testing::file_bytes(path_);
  for (uint64_t i = 8 * 512; i < 16 * 512; ++i) ASSERT_EQ(file[i], 0) << i;
  for (uint64_t i = 32 * 512; i < 36 * 512; ++i) ASSERT_EQ(file[i], 0) << i;
  for (uint64_t i = 40 * 512; i < 44 * 512; ++i) ASSERT_EQ(file[i], 0) << i;
  EXPECT_EQ(file[7 * 512], image_bytes(7 * 512, 1)[0]);
  // Out of range, reserved flags, unmap on DISCARD: refused, nothing changes.
  range_request(type::kDiscard, {2040, 16, 0});
  EXPECT_EQ(drv_.status(), status::kIoErr);
  range_request(type::kDiscard, {UINT64_MAX, 1, 0});
  EXPECT_EQ(drv_.status(), status::kIoErr);
  range_request(type::kWriteZeroes, {0, 1, 2});
  EXPECT_EQ(drv_.status(), status::kUnsupp);
  range_request(type::kDiscard, {0, 1, kDiscardFlagUnmap});
  EXPECT_EQ(drv_.status(), status::kUnsupp);
  EXPECT_EQ(testing::file_bytes(path_), file);
}

TEST_F(RequestTest, RandomChainsNeverCrashOrWritePastTheDisk) {
  std::mt19937_64 rng(12);
  for (int round = 0; round < 3000; ++round) {
    const uint32_t types[] = {type::kIn, type::kOut, type::kFlush, type::kGetId, type::kDiscard,
                              type::kWriteZeroes, static_cast<uint32_t>(rng())};
    drv_.mem().write_obj(BlkDriver::kHeader,
                         RequestHeader{types[rng() % 7], static_cast<uint32_t>(rng()),
                                       rng() % 4 == 0 ? rng() : rng() % 4096});
    std::vector<Buf> bufs;
    const int n = 1 + static_cast<int>(rng() % 6);
    bool writable = false;
    for (int k = 0; k < n; ++k) {
      writable = writable || rng() % 3 == 0;  // readable first, then writable, as walk() requires
      const uint64_t gpa = k == 0 ? BlkDriver::kHeader : BlkDriver::kData + 0x20000ull * k;
      bufs.push_back({gpa, static_cast<uint32_t>(1 + rng() % 0x10000), writable});
    }
    const uint32_t len = run(drv_.chain(bufs));
    uint64_t writable_total = 0;
    for (const Buf& b : bufs) writable_total += b.writable ? b.len : 0;
    EXPECT_LE(len, writable_total);
  }
  EXPECT_EQ(std::filesystem::file_size(path_), kDiskBytes);
}

TEST_F(RequestTest, AHostWriteErrorOnACopyOnWriteOverlayIsIoErrAndLosesNothing) {
  // A real host error on the overlay file: in a child process whose file size limit the
  // overlay's writes cross (EFBIG, as ENOSPC would be on a full file system). The request
  // is answered IOERR, the blocks are not marked written, and earlier data stays readable.
  disk_.reset();  // the fixture's read-write handle holds the write lock
  auto cow = CowDisk::create(DiskImage::open(path_, true), dir_.path().string());
  ctx_.disk = cow.get();
  drv_.fill(BlkDriver::kData, std::vector<uint8_t>(512, 0x5a));
  ASSERT_EQ(run(drv_.simple(type::kOut, 2, 512)), 1u);
  ASSERT_EQ(drv_.status(), status::kOk);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{64 * 1024, 64 * 1024};
    bool ok = ::setrlimit(RLIMIT_FSIZE, &limit) == 0;
    drv_.fill(BlkDriver::kData, std::vector<uint8_t>(4096, 0x77));
    run(drv_.simple(type::kOut, 1000, 4096));  // at 500 KiB: past the limit
    ok = ok && drv_.status() == status::kIoErr && counters_.io_errors == 1;
    run(drv_.simple(type::kIn, 1000, 4096));  // the old bytes, not a half-written block
    ok = ok && drv_.status() == status::kOk && drv_.data(4096) == image_bytes(1000 * 512, 4096);
    run(drv_.simple(type::kIn, 2, 512));
    ok = ok && drv_.status() == status::kOk && drv_.data(512) == std::vector<uint8_t>(512, 0x5a);
    ::_exit(ok ? 0 : 1);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "status " << wstatus;
}

}  // namespace
}  // namespace forkvm::blk
