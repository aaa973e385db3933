// unit tier: a virtio-blk device's snapshot state (its identity: serial, capacity, read-only)
// round-trips, hostile JSON is refused by field, and a device refuses a state saved from another
// disk. DiskImage::share() hands out the same open file and lock.
#include "devices/virtio/block/block_state.hpp"

#include <gtest/gtest.h>

#include <string>

#include "devices/virtio/block/block_device.hpp"
#include "forkvm/errors.hpp"
#include "tests/unit/block/block_test_util.hpp"

namespace forkvm {
namespace {

using nlohmann::json;
using testing::make_image;

std::string decode_error(const json& j) {
  try {
    block_state_from_json(j);
  } catch (const SnapshotError& e) {
    return e.what();
  }
  return "";
}

TEST(BlockState, RoundTripsAndRefusesHostileFields) {
  const BlockDevice::State s{"rootfs", 1u << 20, true};
  EXPECT_EQ(block_state_from_json(to_json(s)), s);
  const json good = to_json(s);
  auto with = [&](const char* key, const json& v) {
    json j = good;
    j[key] = v;
    return j;
  };
  EXPECT_NE(decode_error(with("id", "")).find("blk.id"), std::string::npos);
  EXPECT_NE(decode_error(with("id", "a b")).find("blk.id"), std::string::npos);
  EXPECT_NE(decode_error(with("id", std::string(21, 'x'))).find("blk.id"), std::string::npos);
  EXPECT_NE(decode_error(with("sectors", 0)).find("blk.sectors"), std::string::npos);
  EXPECT_NE(decode_error(with("sectors", UINT64_MAX)).find("blk.sectors"), std::string::npos);
  EXPECT_NE(decode_error(with("sectors", -1)).find("blk.sectors"), std::string::npos);
  EXPECT_NE(decode_error(with("read_only", 1)).find("blk.read_only"), std::string::npos);
  EXPECT_NE(decode_error(with("more", 1)).find("more"), std::string::npos);
  json missing = good;
  missing.erase("sectors");
  EXPECT_NE(decode_error(missing).find("blk.sectors"), std::string::npos);
  EXPECT_NE(decode_error(json::array()).find("blk"), std::string::npos);
}

TEST(BlockState, ADeviceRefusesTheStateOfAnotherDisk) {
  test::TempDir dir("fvblks");
  BlockDevice dev(DiskImage::open(make_image(dir, "a.img", 8192), true), "a");
  const BlockDevice::State mine = dev.save_state();
  EXPECT_EQ(mine, (BlockDevice::State{"a", 16, true}));
  EXPECT_NO_THROW(dev.restore_state(mine));
  for (const BlockDevice::State& other : {BlockDevice::State{"b", 16, true},
                                          BlockDevice::State{"a", 17, true},
                                          BlockDevice::State{"a", 16, false}}) {
    try {
      dev.restore_state(other);
      ADD_FAILURE() << "accepted " << to_json(other).dump();
    } catch (const SnapshotError& e) {
      EXPECT_NE(std::string(e.what()).find("blk '" + other.id + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(DiskImageShare, SharesTheOpenFileAndItsLock) {
  test::TempDir dir("fvblks");
  const std::string img = make_image(dir, "disk.img", 8192);
  std::optional<DiskImage> shared;
  {
    const DiskImage original = DiskImage::open(img, true);
    shared = original.share();
  }  // the original's descriptor is closed; the duplicate keeps the file and the lock
  EXPECT_EQ(shared->path(), img);
  EXPECT_EQ(shared->size(), 8192u);
  EXPECT_TRUE(shared->read_only());
  std::vector<uint8_t> buf(512);
  EXPECT_EQ(shared->read(512, buf), 0);
  EXPECT_EQ(buf, testing::image_bytes(512, 512));
  EXPECT_THROW(DiskImage::open(img, false), ImageError);  // still locked for readers
  shared.reset();
  EXPECT_NO_THROW(DiskImage::open(img, false));
  // A read-write disk belongs to one VM.
  const DiskImage rw = DiskImage::open(img, false);
  EXPECT_THROW((void)rw.share(), ImageError);
}

}  // namespace
}  // namespace forkvm
