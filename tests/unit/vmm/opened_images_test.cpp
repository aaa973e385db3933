// unit tier (no /dev/kvm): VmImage::open reuses an image opened before from an unchanged
// snapshot directory (vmm/opened_images.hpp), and opens anew whenever a file changed, more
// checks are asked for, or nothing keeps the old image alive.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "forkvm/errors.hpp"
#include "forkvm/vm.hpp"
#include "tests/unit/snapshot/snapshot_fixture.hpp"
#include "tests/unit/state/sample_components.hpp"
#include "vmm/machine_components.hpp"
#include "vmm/opened_images.hpp"

namespace forkvm {
namespace {

using namespace snapshot::test;

/// A snapshot VmImage::open accepts: two vCPUs' sample state and an idle vsock device.
void write_openable_snapshot(const fs::path& dir) {
  write_snapshot(dir, test_machine(), encode_components(state::idle_vsock_components(7)),
                 patterned_memory());
}

class OpenedImagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    OpenedImages::instance().clear();
    VmImage::keep_opened(1);
    // The snapshot is written just now: remembered at once here, and every change below comes
    // after a sleep longer than the kernel's file time tick.
    OpenedImages::instance().set_settle(std::chrono::nanoseconds(0));
    dir_ = tmp_.path() / "snap";
    write_openable_snapshot(dir_);
  }
  void TearDown() override {
    OpenedImages::instance().clear();
    VmImage::keep_opened(1);
    OpenedImages::instance().set_settle(std::chrono::seconds(2));
  }
  // Past the coarse clock's tick (a jiffy), so that a change shows in the file times.
  static void tick() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }
  std::string dir() const { return dir_.string(); }

  TempDir tmp_;
  fs::path dir_;
};

TEST_F(OpenedImagesTest, AnUnchangedDirectoryGivesTheSameImage) {
  const auto a = VmImage::open(dir(), false, false);
  const auto b = VmImage::open(dir(), false, false);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a->vcpus(), 2u);
  // Through another spelling of the path too (it is canonicalised).
  const auto c = VmImage::open((tmp_.path() / "." / "snap" / "").string(), false, false);
  EXPECT_EQ(a.get(), c.get());
}

TEST_F(OpenedImagesTest, AskingForTheMemoryCheckOpensAnewUnlessItWasDone) {
  const auto unverified = VmImage::open(dir(), false, false);
  const auto verified = VmImage::open(dir(), true, false);
  EXPECT_NE(unverified.get(), verified.get()) << "an unverified image cannot stand for a check";
  EXPECT_EQ(VmImage::open(dir(), true, false).get(), verified.get());
  EXPECT_EQ(VmImage::open(dir(), false, false).get(), verified.get()) << "more checked is fine";
}

TEST_F(OpenedImagesTest, AnyChangeToAFileOpensAnew) {
  const auto a = VmImage::open(dir(), false, false);
  tick();
  // chmod changes nothing the checks refuse, but it changes the ctime: opened anew.
  ASSERT_EQ(::chmod((dir_ / snapshot::kStateFile).c_str(), 0400), 0);
  const auto b = VmImage::open(dir(), false, false);
  EXPECT_NE(a.get(), b.get());
  EXPECT_EQ(VmImage::open(dir(), false, false).get(), b.get());
  // A new file in the directory.
  tick();
  write_file(dir_ / "extra", "x");
  EXPECT_NE(VmImage::open(dir(), false, false).get(), b.get());
}

TEST_F(OpenedImagesTest, AStateChangedInPlaceIsCheckedAgainAndRefused) {
  const auto a = VmImage::open(dir(), false, false);
  // Same size, other bytes: the digest no longer matches, and the cached image is not returned.
  tick();
  std::string text = read_file(dir_ / snapshot::kStateFile);
  text[text.size() / 2] = text[text.size() / 2] == ' ' ? '\t' : ' ';
  write_file(dir_ / snapshot::kStateFile, text);
  EXPECT_THROW(VmImage::open(dir(), false, false), SnapshotError);
}

TEST_F(OpenedImagesTest, KeepsOnlyWhatItIsToldToOnceUnused) {
  std::weak_ptr<const VmImage> first = VmImage::open(dir(), false, false);
  EXPECT_FALSE(first.expired()) << "keep_opened(1) keeps the last image opened";
  EXPECT_EQ(VmImage::open(dir(), false, false).get(), first.lock().get());
  VmImage::keep_opened(0);
  EXPECT_TRUE(first.expired()) << "keep_opened(0) releases it";
  const auto held = VmImage::open(dir(), false, false);
  EXPECT_EQ(VmImage::open(dir(), false, false).get(), held.get()) << "in use: still reused";
}

TEST_F(OpenedImagesTest, AFreshlyWrittenSnapshotIsNotRememberedUntilItsTimesSettle) {
  OpenedImages::instance().set_settle(std::chrono::hours(1));  // as if written within the hour
  const auto a = VmImage::open(dir(), false, false);
  EXPECT_NE(VmImage::open(dir(), false, false).get(), a.get());
  OpenedImages::instance().set_settle(std::chrono::nanoseconds(0));
  const auto b = VmImage::open(dir(), false, false);
  EXPECT_EQ(VmImage::open(dir(), false, false).get(), b.get());
}

TEST_F(OpenedImagesTest, OnlyDirectoriesOfRegularFilesAreStamped) {
  EXPECT_TRUE(stamp_directory(dir()).has_value());
  fs::create_directory(dir_ / "sub");
  EXPECT_FALSE(stamp_directory(dir()).has_value());
  EXPECT_FALSE(stamp_directory((tmp_.path() / "missing").string()).has_value());
}

}  // namespace
}  // namespace forkvm
