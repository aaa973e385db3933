#include "tools/initramfs/builtin_image.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "forkvm/errors.hpp"
#include "tests/unit/tools/test_util.hpp"

namespace forkvm {
namespace {

// The static busybox stands in for the agent too: any static x86-64 executable will do.
constexpr const char* kBusybox = FORKVM_TEST_BUSYBOX;

BuiltinImageSpec spec() {
  BuiltinImageSpec s;
  s.agent_path = kBusybox;
  s.busybox_path = kBusybox;
  s.busybox_applets = {"bin/sh", "usr/bin/env", "bin/busybox", "sbin/init", "linuxrc",
                       "bin/ls", "sbin/poweroff"};
  return s;
}

TEST(BuiltinImage, HasTheAgentBusyboxDirectoriesAndConsole) {
  const CpioWriter w = build_builtin_image(spec());
  const auto& e = w.entries();
  EXPECT_EQ(e.at("init").kind, CpioKind::kFile);
  EXPECT_EQ(e.at("init").mode, 0755u);
  EXPECT_EQ(e.at("bin/busybox").kind, CpioKind::kFile);
  for (const char* d : {"dev", "proc", "sys", "tmp", "run", "etc", "root", "usr/bin", "sbin"}) {
    ASSERT_TRUE(e.count(d)) << d;
    EXPECT_EQ(e.at(d).kind, CpioKind::kDirectory) << d;
  }
  EXPECT_EQ(e.at("tmp").mode, 01777u);
  const CpioEntry& console = e.at("dev/console");
  EXPECT_EQ(console.kind, CpioKind::kCharDevice);
  EXPECT_EQ(console.rdev_major, 5u);
  EXPECT_EQ(console.rdev_minor, 1u);
}

TEST(BuiltinImage, AppletsAreSymlinksToBusyboxExceptInit) {
  const CpioWriter w = build_builtin_image(spec());
  const auto& e = w.entries();
  for (const char* a : {"bin/sh", "usr/bin/env", "bin/ls", "sbin/poweroff"}) {
    ASSERT_TRUE(e.count(a)) << a;
    EXPECT_EQ(e.at(a).kind, CpioKind::kSymlink) << a;
    EXPECT_EQ(e.at(a).data, "/bin/busybox") << a;
  }
  EXPECT_FALSE(e.count("sbin/init"));
  EXPECT_FALSE(e.count("linuxrc"));
  EXPECT_EQ(e.at("bin/busybox").kind, CpioKind::kFile);  // not replaced by its own applet
}

TEST(BuiltinImage, ExtraFilesWinOverApplets) {
  test::TempDir dir;
  const std::string_view text = "#!x";
  test::write_bytes(dir / "env", std::span(reinterpret_cast<const uint8_t*>(text.data()), 3));
  BuiltinImageSpec s = spec();
  s.extra_files.push_back({dir / "env", "/usr/bin/env", 0700});
  const CpioWriter w = build_builtin_image(s);
  EXPECT_EQ(w.entries().at("usr/bin/env").kind, CpioKind::kFile);
  EXPECT_EQ(w.entries().at("usr/bin/env").mode, 0700u);
  EXPECT_EQ(w.entries().at("usr/bin/env").data, "#!x");
}

TEST(BuiltinImage, ExtraFileModeDefaultsToTheHostFiles) {
  test::TempDir dir;
  test::write_bytes(dir / "tool", std::span<const uint8_t>());
  ASSERT_EQ(::chmod((dir / "tool").c_str(), 0750), 0);
  BuiltinImageSpec s = spec();
  s.extra_files.push_back({dir / "tool", "opt/tool", std::nullopt});
  EXPECT_EQ(build_builtin_image(s).entries().at("opt/tool").mode, 0750u);
}

TEST(BuiltinImage, RejectsDynamicBinaries) {
  // cpio(1) from the host is dynamically linked.
  const std::string dynamic = test::run("command -v cpio").output;
  ASSERT_FALSE(dynamic.empty());
  BuiltinImageSpec s = spec();
  s.agent_path = dynamic.substr(0, dynamic.find('\n'));
  try {
    build_builtin_image(s);
    FAIL() << "accepted a dynamic agent";
  } catch (const ImageError& e) {
    EXPECT_EQ(e.path(), s.agent_path);
    EXPECT_NE(std::string(e.what()).find("dynamically linked"), std::string::npos) << e.what();
  }
  s = spec();
  s.busybox_path = "/etc/hostname";
  EXPECT_THROW(build_builtin_image(s), ImageError);
}

TEST(BuiltinImage, ListsBusyboxApplets) {
  const auto applets = list_busybox_applets(kBusybox);
  EXPECT_NE(std::find(applets.begin(), applets.end(), "bin/sh"), applets.end());
  EXPECT_GT(applets.size(), 50u);
  EXPECT_THROW(list_busybox_applets("/nonexistent/busybox"), ImageError);
  EXPECT_THROW(list_busybox_applets("/bin/false"), ImageError);
}

TEST(BuiltinImage, ParsesAddArguments) {
  ExtraFile f = parse_extra_file("/host/a:/guest/b");
  EXPECT_EQ(f.host_path, "/host/a");
  EXPECT_EQ(f.guest_path, "/guest/b");
  EXPECT_FALSE(f.mode.has_value());
  f = parse_extra_file("a:b:0644");
  EXPECT_EQ(f.guest_path, "b");
  EXPECT_EQ(f.mode, 0644u);
  f = parse_extra_file("a:b:755");
  EXPECT_EQ(f.mode, 0755u);
  for (const char* bad : {"a", ":b", "a:", "a:b:", "a:b:0999", "a:b:rw", "a:b:17777", "a::0644"}) {
    EXPECT_THROW(parse_extra_file(bad), ConfigError) << bad;
  }
}

}  // namespace
}  // namespace forkvm
