// unit tier: the temp dirs of dead processes are found and removed; live ones never are.
#include "sandbox/stale_dirs.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "forkvm/errors.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::stale_dirs {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

/// A pid that was alive a moment ago and is gone now (a child that exited and was reaped).
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

/// A fake temp dir `name` in `base` whose owner file says `owner` (none when empty), with a
/// file inside.
fs::path fake_dir(const TempDir& base, const std::string& name, const std::string& owner) {
  const fs::path d = base.path() / name;
  fs::create_directory(d);
  std::ofstream(d / "vsock.sock") << "x";
  if (!owner.empty()) std::ofstream(d / kOwnerFile) << owner;
  return d;
}

TEST(StaleDirs, StartTimeOfThisProcessAndOfNone) {
  EXPECT_TRUE(process_start_time(::getpid()).has_value());
  EXPECT_FALSE(process_start_time(dead_pid()).has_value());
}

TEST(StaleDirs, RemovesDeadAndReusedOwnersOnlyOnce) {
  TempDir base;
  const uint64_t my_start = *process_start_time(::getpid());
  const std::string me = std::to_string(::getpid());
  const fs::path dead = fake_dir(base, "forkvm-dead01", std::to_string(dead_pid()) + " 12345\n");
  const fs::path reused = fake_dir(base, "forkvm-reuse1", me + " " + std::to_string(my_start + 1) + "\n");
  const fs::path live = fake_dir(base, "forkvm-live01", me + " " + std::to_string(my_start) + "\n");
  const fs::path no_owner = fake_dir(base, "forkvm-old001", "");
  const fs::path garbage = fake_dir(base, "forkvm-bad001", "12 not-a-number\n");
  const fs::path other_name = fake_dir(base, "other-dir", std::to_string(dead_pid()) + " 1\n");
  fs::create_directory_symlink(dead, base.path() / "forkvm-link01");

  EXPECT_EQ(remove_stale(base.path().string()), 2u);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(reused));  // its pid is ours now, but we started later: not ours
  EXPECT_TRUE(fs::exists(live / "vsock.sock"));
  EXPECT_TRUE(fs::exists(no_owner));  // cannot tell: an older forkvm's, or being created
  EXPECT_TRUE(fs::exists(garbage));
  EXPECT_TRUE(fs::exists(other_name));
  EXPECT_TRUE(fs::is_symlink(base.path() / "forkvm-link01"));  // never followed

  const fs::path later = fake_dir(base, "forkvm-dead02", std::to_string(dead_pid()) + " 1\n");
  EXPECT_EQ(remove_stale_once(base.path().string()), 1u);
  EXPECT_FALSE(fs::exists(later));
  fake_dir(base, "forkvm-dead03", std::to_string(dead_pid()) + " 1\n");
  EXPECT_EQ(remove_stale_once(base.path().string()), 0u);  // once per process and directory
}

TEST(StaleDirs, RecordOwnerWritesThisProcess) {
  TempDir base;
  record_owner(base.path().string());
  std::ifstream f(base.path() / kOwnerFile);
  pid_t pid = 0;
  uint64_t start = 0;
  f >> pid >> start;
  EXPECT_EQ(pid, ::getpid());
  EXPECT_EQ(start, *process_start_time(::getpid()));
  EXPECT_THROW(record_owner(base.path().string()), ConfigError);  // O_EXCL: never overwritten
}

}  // namespace
}  // namespace forkvm::stale_dirs
