// unit tier: --disk PATH[:ro|:rw|:cow][,id=ID] as `forkvm run` and `forkvm boot` read it, and a bad
// disk named before anything boots (exit 2 for usage, 3 for an image that cannot be opened).
#include "tools/cli/disk_spec.hpp"

#include <gtest/gtest.h>

#include <string>

#include "tests/support/run_process.hpp"
#include "tools/cli/add_dir_spec.hpp"
#include "tools/cli/args.hpp"

namespace forkvm::cli {
namespace {

TEST(CliDisk, ParsesPathModeAndId) {
  DiskConfig d = parse_disk_spec("/img/a.raw");
  EXPECT_EQ(d.path, "/img/a.raw");
  EXPECT_FALSE(d.read_only);
  EXPECT_EQ(d.id, "");
  d = parse_disk_spec("/img/b.raw:ro,id=base");
  EXPECT_EQ(d.path, "/img/b.raw");
  EXPECT_TRUE(d.read_only);
  EXPECT_EQ(d.id, "base");
  d = parse_disk_spec("rel:dir/c.raw:rw");  // only a trailing :ro/:rw is a mode
  EXPECT_EQ(d.path, "rel:dir/c.raw");
  EXPECT_FALSE(d.read_only);
  EXPECT_FALSE(d.copy_on_write);
  d = parse_disk_spec("/img/d.raw:cow,id=scratch");
  EXPECT_EQ(d.path, "/img/d.raw");
  EXPECT_FALSE(d.read_only);
  EXPECT_TRUE(d.copy_on_write);
  EXPECT_EQ(d.id, "scratch");
  EXPECT_THROW(parse_disk_spec(":cow"), UsageError);
  EXPECT_THROW(parse_disk_spec(""), UsageError);
  EXPECT_THROW(parse_disk_spec(":ro"), UsageError);
  EXPECT_THROW(parse_disk_spec("/a.raw,id="), UsageError);
  EXPECT_THROW(parse_disk_spec("/a.raw,cache=none"), UsageError);
}

TEST(CliAddDir, ParsesHostGuestAndMode) {
  HostDir d = parse_add_dir_spec("/home/me/project:/work");
  EXPECT_EQ(d.host, "/home/me/project");
  EXPECT_EQ(d.guest, "/work");
  EXPECT_FALSE(d.writable);  // read-only unless :rw
  d = parse_add_dir_spec("rel/dir:/mnt/x:rw");
  EXPECT_EQ(d.host, "rel/dir");
  EXPECT_EQ(d.guest, "/mnt/x");
  EXPECT_TRUE(d.writable);
  EXPECT_FALSE(parse_add_dir_spec("a:/b:ro").writable);
  for (const char* bad : {"", "/a", ":/b", "/a:", "/a::rw", "/a:/b:c", ":rw"}) {
    EXPECT_THROW(parse_add_dir_spec(bad), UsageError) << bad;
  }
}

TEST(CliDisk, BadDisksAreNamedBeforeAnythingBoots) {
  const std::string cli = FORKVM_CLI;
  auto r = test::run_process(cli + " run --disk /a.raw,bogus=1 -- true");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("unknown option 'bogus=1'"), std::string::npos) << r.output;
  r = test::run_process(cli + " run --disk /nonexistent/forkvm-disk.raw:ro -- true");
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.output.find("/nonexistent/forkvm-disk.raw: cannot open disk image read-only"),
            std::string::npos) << r.output;
  r = test::run_process(cli + " boot --disk /nonexistent/forkvm-disk.raw --timeout 5");
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.output.find("/nonexistent/forkvm-disk.raw"), std::string::npos) << r.output;
  r = test::run_process(cli + " run --snapshot /tmp/none --disk /a.raw -- true");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--disk cannot be combined with --snapshot"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace forkvm::cli
