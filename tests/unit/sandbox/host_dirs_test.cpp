// unit tier: host directories (SandboxConfig::host_dirs) without KVM. The checks refuse guest
// paths that are not plain absolute paths or that lie where the agent lives, and host paths
// that are missing, files or symbolic links; packing makes an ext4 image that e2fsck accepts;
// copying back runs against the real agent (forkvm-agent-host, whose "guest" is a host
// directory): new, changed and deleted files arrive, unchanged files are not rewritten, links
// come back as links, special files are refused, and a guest directory that replaces a host
// symbolic link never writes through that link.
#include "sandbox/host_dirs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "forkvm/errors.hpp"
#include "tests/support/read_text.hpp"
#include "tests/support/run_process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/sandbox/test_support.hpp"

namespace forkvm {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

void put(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

HostDir dir_of(const std::string& host, const std::string& guest, bool writable = true) {
  HostDir d;
  d.host = host;
  d.guest = guest;
  d.writable = writable;
  return d;
}

TEST(HostDirs, ChecksRefuseBadPaths) {
  test::TempDir tmp("fvhd");
  const std::string host = tmp.path().string();
  EXPECT_NO_THROW(host_dirs::check(dir_of(host, "/work"), 0));
  EXPECT_NO_THROW(host_dirs::check(dir_of(host, "/mnt/a b/c"), 0));
  for (const char* guest : {"", "/", "work", "/work/", "/a//b", "/a/./b", "/a/../b", "/..",
                            "/proc", "/proc/x", "/sys", "/dev/shm", "/run/forkvm/secrets", "/a\nb"}) {
    EXPECT_THROW(host_dirs::check(dir_of(host, guest), 0), ConfigError) << guest;
  }
  EXPECT_NO_THROW(host_dirs::check(dir_of(host, "/devices"), 0));  // only /dev itself is the agent's
  put(tmp / "file", "x");
  fs::create_directory_symlink(host, tmp / "link");
  for (const std::string& bad : {tmp / "missing", tmp / "file", tmp / "link"}) {
    try {
      host_dirs::check(dir_of(bad, "/work"), 0);
      ADD_FAILURE() << bad;
    } catch (const ImageError& e) {
      EXPECT_EQ(e.path(), bad);
    }
  }
}

TEST(HostDirs, PacksAnExt4ImageThatE2fsckAccepts) {
  test::TempDir tmp("fvhd");
  fs::create_directories(tmp / "src/sub");
  put(tmp / "src/sub/a.txt", "hello");
  fs::create_symlink("/etc/passwd", tmp / "src/outside");  // packed as a link, not followed
  const std::string image = tmp / "dir.ext4";
  host_dirs::pack(dir_of(tmp / "src", "/work"), image);
  EXPECT_GE(fs::file_size(image), 64u << 20);
  const auto fsck = test::run_process("/usr/sbin/e2fsck -fn " + image);
  EXPECT_EQ(fsck.status, 0) << fsck.output;
  const auto cat = test::run_process("/usr/sbin/debugfs -R 'cat /sub/a.txt' " + image);
  EXPECT_NE(cat.output.find("hello"), std::string::npos) << cat.output;
  const auto link = test::run_process("/usr/sbin/debugfs -R 'stat /outside' " + image);
  EXPECT_NE(link.output.find("Type: symlink"), std::string::npos) << link.output;
  EXPECT_NE(link.output.find("/etc/passwd"), std::string::npos) << link.output;
  // mkfs.ext4's own message names the failure.
  try {
    host_dirs::pack(dir_of(tmp / "src", "/work"), tmp / "no/such/dir.ext4");
    ADD_FAILURE() << "packing into a missing directory succeeded";
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("mkfs.ext4"), std::string::npos) << e.what();
  }
}

class HostDirCopyBackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AgentClientOptions o;
    o.socket_path = agent_.socket();
    o.connect_timeout = 5s;
    o.request_timeout = 10s;
    client_ = AgentClient::connect(o);
    guest_ = fs::path(agent_.files()) / "mnt";
    host_ = tmp_ / "host";
    outside_ = tmp_ / "outside";
    fs::create_directories(guest_);
    fs::create_directories(host_);
    fs::create_directories(outside_);
  }
  HostDirCopyBack copy_back() {
    HostDirCopyBack r;
    host_dirs::copy_back(*client_, dir_of(host_, guest_), r);
    return r;
  }

  test::AgentHost agent_;
  std::unique_ptr<AgentClient> client_;
  test::TempDir tmp_{"fvhd"};
  fs::path guest_, host_, outside_;
};

TEST_F(HostDirCopyBackTest, MirrorsTheGuestWithoutFollowingLinksOnTheHost) {
  // The host as packed.
  put(host_ / "keep.txt", "same");
  put(host_ / "change.txt", "old");
  put(host_ / "gone.txt", "bye");
  fs::create_directories(host_ / "gone_dir/deeper");
  put(host_ / "gone_dir/deeper/x", "x");
  fs::create_directory_symlink(outside_, host_ / "was_link");  // the guest makes it a directory
  put(host_ / "becomes_dir", "file");
  // The guest after the command.
  fs::copy_file(host_ / "keep.txt", guest_ / "keep.txt");
  fs::last_write_time(guest_ / "keep.txt", fs::last_write_time(host_ / "keep.txt"));
  put(guest_ / "change.txt", "new content");
  put(guest_ / "new.txt", "fresh");
  fs::create_directories(guest_ / "newdir/deep");
  put(guest_ / "newdir/deep/f", "deep");
  fs::create_symlink("/etc/passwd", guest_ / "abs_link");
  fs::create_symlink("../../x", guest_ / "rel_link");
  fs::create_directories(guest_ / "was_link");
  put(guest_ / "was_link/planted", "must not reach the outside");
  fs::create_directories(guest_ / "becomes_dir");
  ASSERT_EQ(::mkfifo((guest_ / "fifo").c_str(), 0600), 0);
  fs::create_directories(guest_ / "lost+found");  // mkfs.ext4's, not copied back
  put(guest_ / "lost+found/#12", "orphan");
  struct stat keep_before {};
  ASSERT_EQ(::lstat((host_ / "keep.txt").c_str(), &keep_before), 0);

  const HostDirCopyBack r = copy_back();

  EXPECT_EQ(test::read_text(host_ / "change.txt"), "new content");
  EXPECT_EQ(test::read_text(host_ / "new.txt"), "fresh");
  EXPECT_EQ(test::read_text(host_ / "newdir/deep/f"), "deep");
  EXPECT_FALSE(fs::exists(fs::symlink_status(host_ / "gone.txt")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(host_ / "gone_dir")));
  EXPECT_TRUE(fs::is_symlink(host_ / "abs_link"));
  EXPECT_EQ(fs::read_symlink(host_ / "abs_link"), "/etc/passwd");
  EXPECT_EQ(fs::read_symlink(host_ / "rel_link"), "../../x");
  EXPECT_FALSE(fs::is_symlink(host_ / "was_link"));
  EXPECT_TRUE(fs::is_directory(fs::symlink_status(host_ / "was_link")));
  EXPECT_EQ(test::read_text(host_ / "was_link/planted"), "must not reach the outside");
  EXPECT_TRUE(fs::is_empty(outside_)) << "a write went through a host symbolic link";
  EXPECT_TRUE(fs::is_directory(fs::symlink_status(host_ / "becomes_dir")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(host_ / "fifo")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(host_ / "lost+found")));
  ASSERT_EQ(r.refused.size(), 1u);
  EXPECT_NE(r.refused[0].find("fifo"), std::string::npos) << r.refused[0];
  struct stat keep_after {};
  ASSERT_EQ(::lstat((host_ / "keep.txt").c_str(), &keep_after), 0);
  EXPECT_EQ(keep_after.st_ino, keep_before.st_ino) << "an unchanged file was rewritten";
  EXPECT_EQ(r.files_written, 4u);  // change, new, deep/f, was_link/planted
  EXPECT_EQ(r.links_written, 2u);
  EXPECT_EQ(r.removed, 2u);        // gone.txt and gone_dir (replaced entries are not counted)
  EXPECT_EQ(r.dirs_created, 4u);   // newdir, newdir/deep, was_link, becomes_dir
  // Nothing is left behind by the temporary names.
  for (const auto& e : fs::recursive_directory_iterator(host_)) {
    EXPECT_EQ(e.path().filename().string().rfind(".forkvm-copy-back-", 0), std::string::npos) << e.path();
  }
  // A second copy-back finds nothing to do.
  const HostDirCopyBack again = copy_back();
  EXPECT_EQ(again.files_written + again.links_written + again.dirs_created + again.removed, 0u);
}

}  // namespace
}  // namespace forkvm
