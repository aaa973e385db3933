// e2e tier: the built-in Debian root filesystem (tools/rootfs/build.sh). python3 runs in a
// sandbox booted on it, in 10 forks of a template and in a fork of a fork; a child's writes to
// "/" (the overlay in its RAM) and to a copy-on-write scratch disk are invisible to its
// siblings, its parent and the template; neither image is ever written; a snapshot with the
// root, a copy-on-write scratch disk (its overlay inside the snapshot) and a read-only data disk
// restores with the same files and disk bytes, twice, independently; a data image changed after
// the snapshot is refused by name. `forkvm run` uses the Debian image by default and the
// initramfs alone with --rootfs minimal.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "forkvm/sandbox.hpp"
#include "forkvm/template.hpp"
#include "tests/e2e/e2e_image.hpp"
#include "tests/support/read_text.hpp"
#include "tests/support/run_process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/disk_of.hpp"

namespace forkvm::e2e {
namespace {

using test::cow_disk_of;
using test::disk_of;

using namespace std::chrono_literals;
using test::TempDir;

constexpr int kForks = 10;

std::string rootfs_image() { return image_dir() + "/rootfs.ext4"; }

/// What identifies the image's bytes for this test: size and modification time.
std::string file_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return std::to_string(st.st_size) + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

/// Runs argv; fails the test unless it exits 0. Returns stdout.
std::string run(Sandbox& box, const std::vector<std::string>& argv) {
  const ExecResult r = box.exec(argv);
  EXPECT_EQ(r.exit_code, 0) << argv.back() << "\nstdout: " << r.stdout_data
                            << "\nstderr: " << r.stderr_data;
  return r.stdout_data;
}

std::string py(Sandbox& box, const std::string& code) { return run(box, {"python3", "-c", code}); }

/// Writes `text` (under 512 bytes) to sector `sector` of the guest's /dev/vdb, bypassing its
/// page cache, so it reaches the device.
void put_sector(Sandbox& box, uint64_t sector, const std::string& text) {
  run(box, {"sh", "-c", "printf %s '" + text + "' | dd of=/dev/vdb bs=512 seek=" +
                            std::to_string(sector) + " conv=sync,fsync oflag=direct status=none"});
}

/// The first `n` bytes of sector `sector` of /dev/vdb, read from the device (O_DIRECT).
std::string get_sector(Sandbox& box, uint64_t sector, size_t n) {
  return run(box, {"sh", "-c", "dd if=/dev/vdb bs=512 skip=" + std::to_string(sector) +
                                   " count=1 iflag=direct status=none | head -c " + std::to_string(n)});
}

SandboxConfig rootfs_config(const std::vector<DiskConfig>& disks = {}) {
  SandboxConfig c;
  c.vm = builtin_config(1, 384, "");
  c.vm.disks = disks;
  c.root_filesystem = rootfs_image();
  c.boot_timeout = kBootDeadline;
  c.request_timeout = 120s;
  return c;
}

TEST(E2eRootfs, PythonRunsInASandboxItsForksAndAForkOfAFork) {
  const std::string image_before = file_stamp(rootfs_image());
  TempDir tmp("fvroot");
  const std::string scratch = tmp / "scratch.img";
  std::ofstream(scratch, std::ios::binary) << std::string(1 << 20, 's');
  // A writable host directory too: it forks like the scratch disk.
  const std::filesystem::path project = tmp / "project";
  std::filesystem::create_directories(project);
  std::ofstream(project / "from-host.txt") << "host";
  SandboxConfig config = rootfs_config({cow_disk_of(scratch, "scratch")});
  HostDir work;
  work.host = project;
  work.guest = "/work";
  work.writable = true;
  config.host_dirs = {work};
  auto box = Sandbox::create(config);
  put_sector(*box, 8, "parent-disk");
  EXPECT_EQ(py(*box, "print(6*7)"), "42\n");
  EXPECT_EQ(run(*box, {"cat", "/etc/debian_version"}).substr(0, 3), "12.");
  // "/" is the overlay; the image is mounted read-only beneath it.
  EXPECT_EQ(run(*box, {"sh", "-c", "awk '$2 == \"/\" {print $3}' /proc/mounts"}), "overlay\n");
  EXPECT_NE(run(*box, {"git", "--version"}).find("git version"), std::string::npos);
  box->write_file("/root/parent.txt", "from the parent");

  auto tmpl = box->make_template();
  std::vector<std::unique_ptr<Sandbox>> children;
  for (int i = 0; i < kForks; ++i) {
    children.push_back(tmpl->fork());
    Sandbox& child = *children.back();
    const std::string tag = "child-" + std::to_string(i);
    // Writes to a file of the image (/etc/hostname), a new file and a pip-sized tree: all in
    // the child's overlay.
    EXPECT_EQ(py(child,
                 "import pathlib\n"
                 "pathlib.Path('/etc/hostname').write_text('" + tag + "')\n"
                 "pathlib.Path('/root/mine.txt').write_text('" + tag + "')\n"
                 "print(open('/root/parent.txt').read())"),
              "from the parent\n");
    put_sector(child, 16, tag + "-disk");
    child.write_file("/work/" + tag + ".txt", tag);
  }
  for (int i = 0; i < kForks; ++i) {
    const std::string tag = "child-" + std::to_string(i);
    EXPECT_EQ(children[i]->read_file("/root/mine.txt"), tag);
    EXPECT_EQ(children[i]->read_file("/etc/hostname"), tag);
    EXPECT_EQ(get_sector(*children[i], 8, 11), "parent-disk");
    EXPECT_EQ(get_sector(*children[i], 16, tag.size() + 5), tag + "-disk");
    EXPECT_EQ(children[i]->read_file("/work/from-host.txt"), "host");
    // Its own file in the host directory's mount, and none of its siblings'.
    const auto names = children[i]->list_dir("/work");
    EXPECT_EQ(names.size(), 3u);  // from-host.txt, lost+found, its own
    EXPECT_TRUE(children[i]->exists("/work/" + tag + ".txt"));
  }
  // The parent (still running on the template's image) sees none of it.
  EXPECT_FALSE(box->exists("/root/mine.txt"));
  EXPECT_EQ(box->read_file("/etc/hostname"), "forkvm\n");
  EXPECT_EQ(get_sector(*box, 16, 4), "ssss");
  EXPECT_FALSE(box->exists("/work/child-0.txt"));
  // The parent's copy-back brings back its own changes only.
  box->write_file("/work/parent.txt", "p");
  box->copy_back_host_dirs();
  EXPECT_TRUE(std::filesystem::exists(project / "parent.txt"));
  EXPECT_FALSE(std::filesystem::exists(project / "child-0.txt"));

  // A fork of a fork: it starts from child 0's files, and its own writes stay its own.
  auto grandchild = children[0]->fork();
  EXPECT_EQ(py(*grandchild, "print(open('/root/mine.txt').read())"), "child-0\n");
  grandchild->write_file("/root/mine.txt", "grandchild");
  EXPECT_EQ(get_sector(*grandchild, 16, 12), "child-0-disk");
  put_sector(*grandchild, 16, "grandchild-disk");
  EXPECT_EQ(get_sector(*children[0], 16, 12), "child-0-disk");
  EXPECT_EQ(py(*grandchild, "import sys; print(sys.version_info[0])"), "3\n");
  EXPECT_EQ(children[0]->read_file("/root/mine.txt"), "child-0");
  EXPECT_EQ(children[1]->read_file("/root/mine.txt"), "child-1");

  grandchild.reset();
  children.clear();
  box->shutdown();
  EXPECT_EQ(file_stamp(rootfs_image()), image_before) << "the root image was written";
  EXPECT_EQ(test::read_text(scratch), std::string(1 << 20, 's')) << "the scratch image was written";
}

TEST(E2eRootfs, ASnapshotWithDisksRestoresAndRefusesAChangedImage) {
  TempDir tmp("fvroot");
  const std::string scratch = tmp / "scratch.img";
  std::ofstream(scratch, std::ios::binary) << std::string(1 << 20, 's');
  const std::string data = tmp / "data.img";
  std::ofstream(data, std::ios::binary) << std::string(64 << 10, 'd');
  // /dev/vda the root, /dev/vdb a copy-on-write scratch disk, /dev/vdc a read-only data disk.
  auto box = Sandbox::create(rootfs_config({cow_disk_of(scratch, "scratch"), disk_of(data, true, "data")}));
  box->write_file("/root/state.txt", "before the snapshot");
  put_sector(*box, 40, "in-the-overlay");
  const std::string snap = tmp / "snap";
  box->snapshot(snap);
  EXPECT_EQ(box->read_file("/root/state.txt"), "before the snapshot");  // it keeps running
  box->shutdown();

  SandboxRestoreConfig rc;
  rc.boot_timeout = kBootDeadline;
  auto restored = Sandbox::restore(snap, rc);
  EXPECT_EQ(py(*restored, "print(open('/root/state.txt').read())"), "before the snapshot\n");
  EXPECT_EQ(run(*restored, {"sh", "-c", "head -c 4 /dev/vdc"}), "dddd");
  // The scratch disk's overlay came back from the snapshot directory; a second restore starts
  // from it too and does not see the first one's writes.
  EXPECT_EQ(get_sector(*restored, 40, 14), "in-the-overlay");
  put_sector(*restored, 40, "first-restore!");
  auto again = Sandbox::restore(snap, rc);
  EXPECT_EQ(get_sector(*again, 40, 14), "in-the-overlay");
  EXPECT_EQ(get_sector(*restored, 40, 14), "first-restore!");
  again->shutdown();
  restored->shutdown();
  EXPECT_EQ(test::read_text(scratch), std::string(1 << 20, 's')) << "the scratch image was written";

  // The data image changes (same size, other bytes): the restore is refused, naming it. File
  // times tick with the kernel's coarse clock; the sleep makes the rewrite visible to them.
  std::this_thread::sleep_for(50ms);
  std::ofstream(data, std::ios::binary) << std::string(64 << 10, 'e');
  try {
    Sandbox::restore(snap, rc);
    ADD_FAILURE() << "a snapshot restored over a changed disk image";
  } catch (const SnapshotError& e) {
    EXPECT_NE(std::string(e.what()).find(data), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("changed after the snapshot"), std::string::npos) << e.what();
  }
}

TEST(E2eRootfs, TheWritableLayerCanLiveOnADiskAndOutliveTheVm) {
  // An ext4 disk as the overlay's upper: what the guest writes to "/" is in it after the VM is
  // gone, and the next sandbox on the same disk sees it.
  TempDir tmp("fvroot");
  const std::string upper = tmp / "upper.ext4";
  const auto mkfs = test::run_process("/usr/sbin/mkfs.ext4 -q -F " + upper + " 32M");
  ASSERT_EQ(mkfs.status, 0) << mkfs.output;
  SandboxConfig c = rootfs_config({disk_of(upper, false, "upper")});
  c.root_upper_disk = "upper";
  {
    auto box = Sandbox::create(c);
    py(*box, "open('/root/kept.txt', 'w').write('written to the upper disk')");
    run(*box, {"sync"});
    box->shutdown();
  }
  // The guest synced but never unmounted: replay the journal first, as a mount would.
  const auto fsck = test::run_process("/usr/sbin/e2fsck -fy " + upper);
  EXPECT_LE(fsck.status, 1) << fsck.output;
  const auto dumped = test::run_process("/usr/sbin/debugfs -R 'cat /upper/root/kept.txt' " + upper);
  EXPECT_NE(dumped.output.find("written to the upper disk"), std::string::npos) << dumped.output;
  auto again = Sandbox::create(c);
  EXPECT_EQ(again->read_file("/root/kept.txt"), "written to the upper disk");
  again->shutdown();
  SandboxConfig bad = rootfs_config();
  bad.root_upper_disk = "nope";
  EXPECT_THROW(Sandbox::create(bad), ConfigError);
}

TEST(E2eRootfs, CliRunDefaultsToTheDebianImage) {
  const auto debian = test::run_process(std::string(FORKVM_CLI) +
                                        " run -- python3 -c 'print(6*7)'");
  EXPECT_EQ(debian.status, 0) << debian.output;
  EXPECT_NE(debian.output.find("42\n"), std::string::npos) << debian.output;
  const auto minimal = test::run_process(std::string(FORKVM_CLI) +
                                         " run --rootfs minimal -- sh -c 'test ! -e /usr/bin/python3 && echo minimal'");
  EXPECT_EQ(minimal.status, 0) << minimal.output;
  EXPECT_NE(minimal.output.find("minimal\n"), std::string::npos) << minimal.output;
}

}  // namespace
}  // namespace forkvm::e2e
