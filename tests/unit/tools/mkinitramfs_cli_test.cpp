// Runs the forkvm-mkinitramfs executable the way the build does.
#include <gtest/gtest.h>

#include "tests/unit/tools/test_util.hpp"

namespace forkvm {
namespace {

const std::string kTool = FORKVM_TEST_MKINITRAMFS;
const std::string kBusyboxPath = FORKVM_TEST_BUSYBOX;

test::CommandResult mkinitramfs(const std::string& args) {
  return test::run(kTool + " " + args + " 2>&1");
}

TEST(MkinitramfsCli, BuildsADeterministicImage) {
  test::TempDir dir;
  const std::string base = "--agent " + kBusyboxPath + " --busybox " + kBusyboxPath;
  ASSERT_EQ(mkinitramfs("-o " + (dir / "a.cpio.gz") + " " + base).status, 0);
  ASSERT_EQ(mkinitramfs("-o " + (dir / "b.cpio.gz") + " " + base).status, 0);
  EXPECT_EQ(test::run("cmp " + (dir / "a.cpio.gz") + " " + (dir / "b.cpio.gz")).status, 0);
  // No temporary file is left behind.
  EXPECT_EQ(test::run("ls " + dir.path().string()).output, "a.cpio.gz\nb.cpio.gz\n");
}

TEST(MkinitramfsCli, ImageHasInitShellAndConsole) {
  test::TempDir dir;
  const std::string extra = dir / "hello.txt";
  test::write_bytes(extra, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("hi\n"), 3));
  ASSERT_EQ(mkinitramfs("-o " + (dir / "i.cpio.gz") + " --agent " + kBusyboxPath + " --busybox " +
                        kBusyboxPath + " --add " + extra + ":/etc/hello.txt:0600")
                .status,
            0);
  const auto r =
      test::run("gzip -dc < " + (dir / "i.cpio.gz") + " | LC_ALL=C cpio -tv --quiet");
  ASSERT_EQ(r.status, 0);
  auto has = [&](const std::string& needle) { return r.output.find(needle) != std::string::npos; };
  EXPECT_TRUE(has(" init\n")) << r.output;
  EXPECT_TRUE(has(" bin/sh -> /bin/busybox\n"));
  EXPECT_TRUE(has(" usr/bin/env -> /bin/busybox\n"));
  EXPECT_TRUE(has(" etc/hello.txt\n"));
  EXPECT_TRUE(has("crw-------"));
  EXPECT_FALSE(has(" sbin/init "));
}

TEST(MkinitramfsCli, UsageErrorsExitWith2) {
  EXPECT_EQ(mkinitramfs("").status, 2);
  EXPECT_EQ(mkinitramfs("-o /tmp/x").status, 2);
  EXPECT_EQ(mkinitramfs("--bogus 1").status, 2);
  EXPECT_EQ(mkinitramfs("-o /tmp/x --agent a --busybox b --add nocolon").status, 2);
  EXPECT_EQ(mkinitramfs("--help").status, 0);
}

TEST(MkinitramfsCli, MissingInputIsNamed) {
  test::TempDir dir;
  const auto r = mkinitramfs("-o " + (dir / "o.gz") + " --agent /nonexistent/agent --busybox " +
                             kBusyboxPath);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("/nonexistent/agent"), std::string::npos) << r.output;
  EXPECT_EQ(test::run("ls " + dir.path().string()).output, "");
}

}  // namespace
}  // namespace forkvm
