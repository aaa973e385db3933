// unit tier: CowDisk, the copy-on-write disk that forks with its VM. Writes never reach the base
// image; a partial block write keeps the block's other bytes; a frozen disk is what every child
// starts from, and parent, children and grandchildren never see each other's later writes
// (checked against a byte-array model under random writes, discards and freezes, deep enough
// to merge layers); overlays are unlinked files that leave nothing behind.
#include "devices/virtio/block/cow_disk.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "forkvm/errors.hpp"
#include "tests/unit/block/block_test_util.hpp"

namespace forkvm {
namespace {

using testing::image_bytes;
using testing::make_image;

constexpr uint64_t kDiskBytes = 256 * 1024 + 512;  // 64 blocks and a short last one

class CowDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_path_ = make_image(dir_, "base.img", kDiskBytes);
    std::filesystem::create_directory(overlays());
  }
  std::string overlays() const { return dir_ / "overlays"; }
  std::unique_ptr<CowDisk> open() { return CowDisk::create(DiskImage::open(base_path_, true), overlays()); }
  static std::vector<uint8_t> read_all(const BlockBackend& d) {
    std::vector<uint8_t> out(d.size());
    EXPECT_EQ(d.read(0, out), 0);
    return out;
  }

  test::TempDir dir_{"fvcow"};
  std::string base_path_;
};

TEST_F(CowDiskTest, WritesStayInTheOverlayAndPartialBlocksKeepTheirOtherBytes) {
  auto disk = open();
  EXPECT_FALSE(disk->read_only());
  EXPECT_TRUE(disk->copy_on_write());
  EXPECT_EQ(disk->size(), kDiskBytes);
  EXPECT_EQ(read_all(*disk), image_bytes(0, kDiskBytes));
  std::vector<uint8_t> model = image_bytes(0, kDiskBytes);
  // One sector in the middle of block 2, a range over blocks 5..7 starting mid-block, and the
  // short last block.
  const std::vector<uint8_t> a(512, 0xaa), b(3 * 4096, 0xbb), c(512, 0xcc);
  ASSERT_EQ(disk->write(2 * 4096 + 1024, a), 0);
  ASSERT_EQ(disk->write(5 * 4096 + 512, b), 0);
  ASSERT_EQ(disk->write(kDiskBytes - 512, c), 0);
  std::copy(a.begin(), a.end(), model.begin() + 2 * 4096 + 1024);
  std::copy(b.begin(), b.end(), model.begin() + 5 * 4096 + 512);
  std::copy(c.begin(), c.end(), model.end() - 512);
  EXPECT_EQ(read_all(*disk), model);
  // Reads that start and end inside blocks, across levels.
  std::vector<uint8_t> part(4096 + 1024);
  ASSERT_EQ(disk->read(2 * 4096 + 512, part), 0);
  EXPECT_EQ(part, std::vector<uint8_t>(model.begin() + 2 * 4096 + 512, model.begin() + 3 * 4096 + 1536));
  EXPECT_EQ(disk->top_bytes(), 6u * 4096);  // blocks 2, 5, 6, 7, 8 and the last one
  EXPECT_EQ(disk->flush(), 0);
  EXPECT_EQ(testing::file_bytes(base_path_), image_bytes(0, kDiskBytes));  // the base is untouched
  // Out of range: refused, not clamped.
  EXPECT_EQ(disk->write(kDiskBytes, c), EIO);
  EXPECT_EQ(disk->read(kDiskBytes - 256, std::span(part.data(), 512)), EIO);
}

TEST_F(CowDiskTest, DiscardReadsAsZeros) {
  auto disk = open();
  ASSERT_TRUE(disk->can_punch_holes());
  std::vector<uint8_t> model = image_bytes(0, kDiskBytes);
  ASSERT_EQ(disk->punch_hole(512, 3 * 4096), 0);  // partial, whole, whole, partial
  std::fill(model.begin() + 512, model.begin() + 512 + 3 * 4096, 0);
  ASSERT_EQ(disk->write_zeroes(10 * 4096, 8192), 0);
  std::fill(model.begin() + 10 * 4096, model.begin() + 12 * 4096, 0);
  EXPECT_EQ(read_all(*disk), model);
}

TEST_F(CowDiskTest, ChildrenStartFromTheFrozenDiskAndNeverSeeEachOther) {
  auto parent = open();
  const std::vector<uint8_t> p1(4096, 1);
  ASSERT_EQ(parent->write(0, p1), 0);
  const auto frozen = parent->freeze();
  EXPECT_EQ(parent->layer_count(), 1u);
  EXPECT_EQ(parent->top_bytes(), 0u);
  auto a = frozen->open_child();
  auto b = frozen->open_child();
  const std::vector<uint8_t> p2(4096, 2), a1(512, 3), b1(512, 4);
  ASSERT_EQ(parent->write(0, p2), 0);  // after the freeze: the children keep p1
  ASSERT_EQ(a->write(100 * 512, a1), 0);
  ASSERT_EQ(b->write(100 * 512, b1), 0);
  std::vector<uint8_t> buf(4096);
  ASSERT_EQ(a->read(0, buf), 0);
  EXPECT_EQ(buf, p1);
  ASSERT_EQ(parent->read(0, buf), 0);
  EXPECT_EQ(buf, p2);
  std::vector<uint8_t> s(512);
  ASSERT_EQ(a->read(100 * 512, s), 0);
  EXPECT_EQ(s, a1);
  ASSERT_EQ(b->read(100 * 512, s), 0);
  EXPECT_EQ(s, b1);
  ASSERT_EQ(parent->read(100 * 512, s), 0);
  EXPECT_EQ(s, image_bytes(100 * 512, 512));
  // A fork of a fork starts from a's disk.
  auto grandchild = a->freeze()->open_child();
  ASSERT_EQ(grandchild->read(100 * 512, s), 0);
  EXPECT_EQ(s, a1);
  // Freezing without writes adds no layer.
  auto unchanged = open();
  unchanged->freeze();
  EXPECT_EQ(unchanged->layer_count(), 0u);
}

/// One VM's view in the random test: the disk and the bytes it must read.
struct Vm {
  std::unique_ptr<BlockBackend> disk;
  std::vector<uint8_t> model;
};

TEST_F(CowDiskTest, RandomWritesDiscardsAndForksMatchAByteModel) {
  std::mt19937_64 rng(20261202);
  std::vector<Vm> vms;
  vms.push_back({open(), image_bytes(0, kDiskBytes)});
  size_t max_layers = 0, merges = 0;
  for (int step = 0; step < 1500; ++step) {
    Vm& vm = vms[rng() % vms.size()];
    const uint64_t sectors = kDiskBytes / 512;
    const uint64_t first = rng() % sectors;
    const uint64_t count = 1 + rng() % std::min<uint64_t>(40, sectors - first);
    const uint64_t off = first * 512, len = count * 512;
    switch (rng() % 8) {
      case 0: {  // freeze: the VM goes on; while there are few VMs, a child starts from it
        auto& cow = static_cast<CowDisk&>(*vm.disk);
        const bool would_merge = cow.layer_count() == CowDisk::kMaxLayers && cow.top_bytes() > 0;
        auto frozen = vm.disk->freeze();
        max_layers = std::max(max_layers, cow.layer_count());
        if (would_merge) {
          EXPECT_EQ(cow.layer_count(), 1u);
          ++merges;
        }
        if (vms.size() < 12) {
          Vm child{frozen->open_child(), vm.model};
          vms.push_back(std::move(child));
        }
        break;
      }
      case 1:
        ASSERT_EQ(vm.disk->punch_hole(off, len), 0);
        std::fill(vm.model.begin() + off, vm.model.begin() + off + len, 0);
        break;
      default: {
        std::vector<uint8_t> data(len);
        for (auto& byte : data) byte = static_cast<uint8_t>(rng());
        ASSERT_EQ(vm.disk->write(off, data), 0);
        std::copy(data.begin(), data.end(), vm.model.begin() + off);
      }
    }
    if (step % 100 == 99) {
      for (size_t i = 0; i < vms.size(); ++i) ASSERT_EQ(read_all(*vms[i].disk), vms[i].model) << i;
    }
  }
  for (size_t i = 0; i < vms.size(); ++i) ASSERT_EQ(read_all(*vms[i].disk), vms[i].model) << i;
  EXPECT_GE(vms.size(), 8u);
  EXPECT_EQ(max_layers, CowDisk::kMaxLayers);  // reached, never passed: deeper chains merged
  EXPECT_GT(merges, 0u);
  EXPECT_EQ(testing::file_bytes(base_path_), image_bytes(0, kDiskBytes));
}

TEST_F(CowDiskTest, OverlaysLeaveNoFilesAndABadDirectoryIsNamed) {
  {
    auto disk = open();
    ASSERT_EQ(disk->write(0, std::vector<uint8_t>(8192, 7)), 0);
    auto child = disk->freeze()->open_child();
    EXPECT_TRUE(std::filesystem::is_empty(overlays()));  // unlinked from the start
  }
  try {
    CowDisk::create(DiskImage::open(base_path_, true), dir_ / "missing");
    ADD_FAILURE() << "an overlay directory that does not exist was accepted";
  } catch (const ImageError& e) {
    EXPECT_EQ(e.path(), dir_ / "missing");
  }
  EXPECT_THROW(CowDisk::create(DiskImage::open(base_path_, false), overlays()), ConfigError);
}

}  // namespace
}  // namespace forkvm
