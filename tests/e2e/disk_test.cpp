// e2e tier: virtio-blk disks in a real guest (Linux's virtio_blk driver behind virtio-mmio): the
// guest sees each disk's size and serial, reads the image's bytes, writes through to the file
// with fdatasync on its flush, cannot write a read-only disk (whose file stays unchanged), and a
// second VM cannot open a disk another one writes. A VM with a read-write disk refuses to fork
// for now (read-only disks fork: rootfs_test.cpp). A copy-on-write overlay that runs out of
// host space is an I/O error in the guest, and the VM goes on. `forkvm run --add-dir` mounts a
// host directory and copies a writable one's changes back.
#include <sys/mount.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fstream>
#include <string>
#include <vector>

#include "forkvm/sandbox.hpp"
#include "tests/e2e/e2e_image.hpp"
#include "tests/support/read_text.hpp"
#include "tests/support/run_process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/disk_of.hpp"

namespace forkvm::e2e {
namespace {

using test::disk_of;

using namespace std::chrono_literals;
using test::TempDir;

constexpr uint64_t kRwBytes = 1 << 20;    // 2048 sectors
constexpr uint64_t kRoBytes = 256 << 10;  // 512 sectors

/// A file of `bytes` whose byte i is (i * 13 + seed) mod 256.
std::string make_image(const TempDir& dir, const std::string& name, uint64_t bytes, int seed) {
  std::string data(bytes, '\0');
  for (uint64_t i = 0; i < bytes; ++i) data[i] = static_cast<char>((i * 13 + seed) & 0xff);
  const std::string path = dir / name;
  std::ofstream(path, std::ios::binary) << data;
  return path;
}

/// The guest's od -An -tx1 -v of bytes: two hex digits each, as the host prints them.
std::string hex_bytes(std::string_view bytes) {
  static const char* h = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += h[b >> 4];
    out += h[b & 15];
  }
  return out;
}

class E2eDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    rw_ = make_image(tmp_, "scratch.img", kRwBytes, 1);
    ro_ = make_image(tmp_, "base.img", kRoBytes, 7);
    ro_before_ = test::read_text(ro_);
    SandboxConfig c;
    c.vm = builtin_config(1, 256, "");
    c.vm.disks = {disk_of(rw_, false, "scratch"), disk_of(ro_, true, "base-ro")};
    c.boot_timeout = kBootDeadline;
    c.request_timeout = 120s;
    box_ = Sandbox::create(c);
  }
  /// Runs a shell line in the guest; fails the test unless it exits 0.
  std::string sh(const std::string& line) {
    const ExecResult r = box_->exec_shell(line);
    EXPECT_EQ(r.exit_code, 0) << line << "\nstdout: " << r.stdout_data << "\nstderr: " << r.stderr_data;
    return r.stdout_data;
  }
  /// Guest bytes as hex without whitespace.
  std::string guest_hex(const std::string& dev, uint64_t skip_sectors, uint64_t sectors) {
    std::string out = sh("dd if=" + dev + " bs=512 skip=" + std::to_string(skip_sectors) +
                         " count=" + std::to_string(sectors) + " 2>/dev/null | od -An -tx1 -v");
    std::erase_if(out, [](char ch) { return ch == ' ' || ch == '\n'; });
    return out;
  }

  TempDir tmp_{"fvdisk"};
  std::string rw_, ro_, ro_before_;
  std::unique_ptr<Sandbox> box_;
};

TEST_F(E2eDisk, TheGuestReadsWritesAndIsRefusedWhatItMayNot) {
  // Sizes (in 512-byte sectors), serials and the read-only flag as Linux sees them.
  EXPECT_EQ(sh("cat /sys/block/vda/size /sys/block/vdb/size"), "2048\n512\n");
  EXPECT_EQ(sh("cat /sys/block/vda/serial; echo; cat /sys/block/vdb/serial"), "scratch\nbase-ro");
  EXPECT_EQ(sh("cat /sys/block/vda/ro /sys/block/vdb/ro"), "0\n1\n");

  // Reads: the image's bytes, at the start, in the middle and in the last sector.
  const std::string rw_before = test::read_text(rw_);
  EXPECT_EQ(guest_hex("/dev/vda", 0, 1), hex_bytes(std::string_view(rw_before).substr(0, 512)));
  EXPECT_EQ(guest_hex("/dev/vda", 1000, 3), hex_bytes(std::string_view(rw_before).substr(1000 * 512, 1536)));
  EXPECT_EQ(guest_hex("/dev/vda", 2047, 1), hex_bytes(std::string_view(rw_before).substr(2047 * 512)));
  EXPECT_EQ(guest_hex("/dev/vdb", 100, 2), hex_bytes(std::string_view(ro_before_).substr(100 * 512, 1024)));

  // A write with fsync is in the host file when the command returns (FLUSH is fdatasync).
  std::string blob(4096, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(255 - i % 251);
  box_->write_file("/tmp/blob", blob);
  sh("dd if=/tmp/blob of=/dev/vda bs=512 seek=8 conv=fsync 2>/dev/null");
  const std::string rw_after = test::read_text(rw_);
  ASSERT_EQ(rw_after.size(), kRwBytes);
  EXPECT_EQ(rw_after.substr(8 * 512, 4096), blob);
  EXPECT_EQ(rw_after.substr(0, 8 * 512), rw_before.substr(0, 8 * 512));
  EXPECT_EQ(rw_after.substr(16 * 512), rw_before.substr(16 * 512));

  // The read-only disk: the write fails in the guest and the file is unchanged, byte for byte.
  const ExecResult w = box_->exec_shell("dd if=/tmp/blob of=/dev/vdb bs=512 count=1 conv=fsync");
  EXPECT_NE(w.exit_code, 0) << w.stdout_data << w.stderr_data;
  EXPECT_EQ(test::read_text(ro_), ro_before_);

  // A second VM cannot open the disk this one writes; the error names the file.
  SandboxConfig second;
  second.vm = builtin_config(1, 128, "");
  second.vm.disks = {disk_of(rw_, false, "")};
  try {
    Sandbox::create(second);
    ADD_FAILURE() << "a second VM opened a disk another VM writes";
  } catch (const ImageError& e) {
    EXPECT_EQ(e.path(), rw_);
  }

  // Forking a VM with a read-write disk is refused before anything is touched; the sandbox
  // goes on.
  EXPECT_THROW(box_->fork(ForkConfig{}), SnapshotError);
  EXPECT_EQ(sh("echo still-here"), "still-here\n");
  box_->shutdown();
}

TEST(E2eDiskCli, RunAttachesADisk) {
  TempDir tmp("fvdisk");
  const std::string img = make_image(tmp, "cli.img", 64 << 10, 3);
  // The built-in root filesystem is /dev/vda; --disk comes after it.
  auto r = test::run_process(std::string(FORKVM_CLI) + " run --disk " + img +
                             ":ro,id=cli-disk -- cat /sys/block/vda/serial /sys/block/vdb/serial "
                             "/sys/block/vdb/size");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rootfscli-disk128\n"), std::string::npos) << r.output;
  // Without a root filesystem the disk is /dev/vda.
  r = test::run_process(std::string(FORKVM_CLI) + " run --rootfs minimal --disk " + img +
                        ":ro,id=cli-disk -- cat /sys/block/vda/serial");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("cli-disk"), std::string::npos) << r.output;
}

TEST(E2eDiskCli, AddDirMountsAHostDirectoryAndCopiesChangesBack) {
  TempDir tmp("fvdisk");
  const std::filesystem::path host = tmp / "project";
  std::filesystem::create_directories(host / "sub");
  std::ofstream(host / "a.txt") << "A";
  std::ofstream(host / "del.txt") << "delete me";
  std::ofstream(host / "sub/b.txt") << "B";
  std::filesystem::create_symlink("/etc/hostname", host / "link");
  const std::string cli = std::string(FORKVM_CLI) + " run --rootfs minimal --add-dir " + host.string();
  auto r = test::run_process(cli + ":/work:rw -- sh -c 'cat /work/a.txt; echo; readlink /work/link; "
                             "echo new > /work/new.txt; rm /work/del.txt; echo changed > /work/sub/b.txt; "
                             "mkdir -p /work/made/deep; echo d > /work/made/deep/f'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("A\n/etc/hostname\n"), std::string::npos) << r.output;
  EXPECT_EQ(test::read_text(host / "new.txt"), "new\n");
  EXPECT_FALSE(std::filesystem::exists(host / "del.txt"));
  EXPECT_EQ(test::read_text(host / "sub/b.txt"), "changed\n");
  EXPECT_EQ(test::read_text(host / "made/deep/f"), "d\n");
  EXPECT_EQ(std::filesystem::read_symlink(host / "link"), "/etc/hostname");
  EXPECT_FALSE(std::filesystem::exists(host / "lost+found"));
  // Read-only (the default): the guest cannot write, and nothing comes back.
  r = test::run_process(cli + ":/ro -- sh -c 'cat /ro/a.txt && echo x > /ro/x'");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_FALSE(std::filesystem::exists(host / "x"));
  // A missing host directory is named before anything boots (exit 3).
  r = test::run_process(std::string(FORKVM_CLI) + " run --add-dir " + std::string(tmp / "nope") + ":/x -- true");
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find(std::string(tmp / "nope")), std::string::npos) << r.output;
}

TEST(E2eDiskErrors, AFullOverlayIsAnIoErrorAndTheVmGoesOn) {
  // A copy-on-write disk whose overlay directory is a 256 KiB tmpfs: writing 2 MiB fills it, the
  // host's ENOSPC reaches the guest as an I/O error, and the VM, the image and the sandbox are
  // fine afterwards.
  TempDir tmp("fvdisk");
  const std::string small = tmp / "small";
  std::filesystem::create_directory(small);
  ASSERT_EQ(::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=256k"), 0)
      << "mount a tmpfs for the overlay (e2e tests run as root): " << std::strerror(errno);
  const std::string img = make_image(tmp, "base.img", 4 << 20, 9);
  const std::string before = test::read_text(img);
  {
    SandboxConfig c;
    c.vm = builtin_config(1, 256, "");
    DiskConfig d = test::cow_disk_of(img, "cow");
    d.overlay_dir = small;
    c.vm.disks = {d};
    c.boot_timeout = kBootDeadline;
    c.request_timeout = 120s;
    auto box = Sandbox::create(c);
    const ExecResult w = box->exec_shell("dd if=/dev/zero of=/dev/vda bs=64k count=32 conv=fsync");
    EXPECT_NE(w.exit_code, 0) << w.stdout_data << w.stderr_data;
    const ExecResult after = box->exec_shell("echo alive; dd if=/dev/vda bs=512 count=1 skip=7000 2>/dev/null | wc -c");
    EXPECT_EQ(after.exit_code, 0);
    EXPECT_EQ(after.stdout_data, "alive\n512\n");
    box->shutdown();
  }
  EXPECT_EQ(test::read_text(img), before);
  EXPECT_EQ(::umount2(small.c_str(), MNT_DETACH), 0) << std::strerror(errno);
}

}  // namespace
}  // namespace forkvm::e2e
