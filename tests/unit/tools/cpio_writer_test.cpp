#include "tools/initramfs/cpio_writer.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "forkvm/errors.hpp"
#include "tests/unit/tools/test_util.hpp"
#include "tools/initramfs/gzip.hpp"

namespace forkvm {
namespace {

using test::lines;
using test::run;
using test::TempDir;

// A small archive with one of everything.
CpioWriter sample() {
  CpioWriter w;
  w.add_file("/init", "#!/bin/sh\necho hi\n", 0755);
  w.add_file("etc/motd", "hello\n", 0644, {1000, 100});
  w.add_file("empty", "", 0600);
  w.add_file("odd", std::string("abc\0\xff\x01", 6), 0640);  // binary, not a multiple of 4
  w.add_directory("/tmp", 01777);
  w.add_symlink("bin/sh", "/bin/busybox");
  w.add_char_device("/dev/console", 5, 1, 0600);
  w.add_block_device("dev/vda", 254, 0, 0660);
  return w;
}

// Writes the uncompressed archive and returns the path.
std::string write_cpio(const TempDir& dir, const CpioWriter& w) {
  const std::string path = dir / "a.cpio";
  test::write_bytes(path, w.to_cpio());
  return path;
}

TEST(CpioWriter, CpioListsExactlyWhatWasAdded) {
  TempDir dir;
  const auto r = run("cpio -t --quiet < " + write_cpio(dir, sample()));
  ASSERT_EQ(r.status, 0);
  // Sorted by path, implicit parents (bin, dev, etc) included, trailer not listed.
  EXPECT_EQ(lines(r.output), (std::vector<std::string>{"bin", "bin/sh", "dev", "dev/console",
                                                        "dev/vda", "empty", "etc", "etc/motd",
                                                        "init", "odd", "tmp"}));
}

TEST(CpioWriter, GzipOutputIsReadableByGzipAndCpio) {
  TempDir dir;
  const std::string path = dir / "a.cpio.gz";
  test::write_bytes(path, sample().to_cpio_gz());
  const auto r = run("gzip -dc < " + path + " | cpio -t --quiet");
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(lines(r.output).size(), 11u);
  const auto raw = run("gzip -dc < " + path + " | cmp - " + write_cpio(dir, sample()));
  EXPECT_EQ(raw.status, 0) << raw.output;
}

TEST(CpioWriter, ContentsRoundTrip) {
  TempDir dir;
  const std::string archive = write_cpio(dir, sample());
  const std::string out = dir / "x";
  ASSERT_EQ(run("mkdir " + out + " && cd " + out +
                " && cpio -idm --quiet --no-absolute-filenames < " + archive + " 2>&1")
                .status,
            0);
  EXPECT_EQ(test::read_text(out + "/init"), "#!/bin/sh\necho hi\n");
  EXPECT_EQ(test::read_text(out + "/etc/motd"), "hello\n");
  EXPECT_EQ(test::read_text(out + "/empty"), "");
  EXPECT_EQ(test::read_text(out + "/odd"), std::string("abc\0\xff\x01", 6));
  struct stat st {};
  ASSERT_EQ(::stat((out + "/init").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::lstat((out + "/bin/sh").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ASSERT_EQ(::lstat((out + "/tmp").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  EXPECT_EQ(st.st_mtime, 0);  // fixed mtime, restored by -m
}

TEST(CpioWriter, SymlinkDeviceAndOwnerAttributes) {
  TempDir dir;
  // TZ and locale fixed so that mtime 0 prints as "Jan  1  1970".
  const auto r =
      run("TZ=UTC LC_ALL=C cpio -tv --quiet --numeric-uid-gid < " + write_cpio(dir, sample()));
  ASSERT_EQ(r.status, 0);
  auto line_for = [&](const std::string& suffix) {
    for (const auto& l : lines(r.output)) {
      if (l.ends_with(suffix)) return l;
    }
    return std::string();
  };
  EXPECT_EQ(line_for(" bin/sh -> /bin/busybox").rfind("lrwxrwxrwx", 0), 0u) << r.output;
  const std::string console = line_for(" dev/console");
  EXPECT_EQ(console.rfind("crw-------", 0), 0u) << console;
  EXPECT_NE(console.find(" 5,"), std::string::npos) << console;
  EXPECT_NE(console.find(" 1 Jan  1  1970"), std::string::npos) << console;
  const std::string vda = line_for(" dev/vda");
  EXPECT_EQ(vda.rfind("brw-rw----", 0), 0u) << vda;
  EXPECT_NE(vda.find("254,"), std::string::npos) << vda;
  const std::string motd = line_for(" etc/motd");
  EXPECT_NE(motd.find(" 1000 "), std::string::npos) << motd;
  EXPECT_NE(motd.find(" 100 "), std::string::npos) << motd;
  EXPECT_EQ(line_for(" tmp").rfind("drwxrwxrwt", 0), 0u);
}

TEST(CpioWriter, IdenticalInputsGiveIdenticalBytes) {
  // Same entries added in a different order: the output is sorted, so still identical.
  CpioWriter a = sample();
  CpioWriter b;
  b.add_block_device("dev/vda", 254, 0, 0660);
  b.add_char_device("/dev/console", 5, 1, 0600);
  b.add_symlink("bin/sh", "/bin/busybox");
  b.add_directory("/tmp", 01777);
  b.add_file("odd", std::string("abc\0\xff\x01", 6), 0640);
  b.add_file("empty", "", 0600);
  b.add_file("etc/motd", "hello\n", 0644, {1000, 100});
  b.add_file("/init", "#!/bin/sh\necho hi\n", 0755);
  EXPECT_EQ(a.to_cpio(), b.to_cpio());
  EXPECT_EQ(a.to_cpio_gz(), b.to_cpio_gz());
  EXPECT_EQ(sample().to_cpio_gz(), sample().to_cpio_gz());
}

TEST(CpioWriter, NewcLayout) {
  CpioWriter w;
  w.add_file("a", "xyz", 0644);
  const std::vector<uint8_t> bytes = w.to_cpio();
  const std::string s(bytes.begin(), bytes.end());
  EXPECT_EQ(bytes.size() % 4, 0u);
  // First record: ino 1, mode 0100644, uid 0, gid 0, nlink 1, mtime 0, size 3, namesize 2.
  EXPECT_EQ(s.substr(0, 110),
            "070701" "00000001" "000081A4" "00000000" "00000000" "00000001" "00000000"
            "00000003" "00000000" "00000000" "00000000" "00000000" "00000002" "00000000");
  // Name "a\0" ends at 112, already 4-aligned; the data follows and is padded to 116.
  EXPECT_EQ(s.substr(110, 2), std::string("a\0", 2));
  EXPECT_EQ(s.substr(112, 4), std::string("xyz\0", 4));
  // Then the trailer, at a 4-byte boundary.
  EXPECT_EQ(s.substr(116, 6), "070701");
  EXPECT_NE(s.find("TRAILER!!!", 116), std::string::npos);
}

TEST(CpioWriter, GzipHeaderHasNoTimestampOrName) {
  const std::vector<uint8_t> gz = sample().to_cpio_gz();
  ASSERT_GE(gz.size(), 10u);
  EXPECT_EQ(gz[0], 0x1f);
  EXPECT_EQ(gz[1], 0x8b);
  EXPECT_EQ(gz[2], 8);     // deflate
  EXPECT_EQ(gz[3], 0);     // no FNAME, FCOMMENT, FEXTRA, FHCRC
  EXPECT_EQ(gz[4] | gz[5] | gz[6] | gz[7], 0);  // MTIME 0
  EXPECT_FALSE(gzip_compress({}).empty());
}

TEST(CpioWriter, InodesAreSequentialInSortedOrder) {
  // cpio(1) does not print inode numbers: read them from the headers.
  const std::vector<uint8_t> bytes = sample().to_cpio();
  const std::string s(bytes.begin(), bytes.end());
  uint32_t expected = 1;
  size_t pos = 0;
  while ((pos = s.find("070701", pos)) != std::string::npos) {
    const std::string name_size_hex = s.substr(pos + 6 + 11 * 8, 8);
    const std::string ino_hex = s.substr(pos + 6, 8);
    const uint32_t ino = static_cast<uint32_t>(std::stoul(ino_hex, nullptr, 16));
    const size_t name_size = std::stoul(name_size_hex, nullptr, 16);
    const std::string name = s.substr(pos + 110, name_size - 1);
    if (name == "TRAILER!!!") {
      EXPECT_EQ(ino, 0u);
      break;
    }
    EXPECT_EQ(ino, expected++) << name;
    pos += 110;
  }
  EXPECT_EQ(expected, 12u);
}

TEST(CpioWriter, RejectsBadPaths) {
  CpioWriter w;
  for (const char* bad : {"", "/", "//", "a//b", "a/", "../x", "a/../b", "a/..", "./a", "a/./b",
                          "."}) {
    EXPECT_THROW(w.add_file(bad, "x", 0644), ImageError) << bad;
  }
  EXPECT_THROW(w.add_file(std::string_view("a\0b", 3), "x", 0644), ImageError);
  EXPECT_TRUE(w.entries().empty());
}

TEST(CpioWriter, ErrorsNameThePath) {
  CpioWriter w;
  try {
    w.add_file("x/../y", "", 0644);
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_EQ(e.path(), "x/../y");
  }
  try {
    w.add_file_from_host("a", "/nonexistent/forkvm-file", 0644);
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_EQ(e.path(), "/nonexistent/forkvm-file");
  }
}

TEST(CpioWriter, NormalizesLeadingSlash) {
  EXPECT_EQ(CpioWriter::normalize_path("/bin/sh"), "bin/sh");
  EXPECT_EQ(CpioWriter::normalize_path("bin/sh"), "bin/sh");
  EXPECT_EQ(CpioWriter::normalize_path("usr/bin/["), "usr/bin/[");
}

TEST(CpioWriter, RejectsDuplicatesAndNonDirectoryParents) {
  CpioWriter w;
  w.add_file("a", "", 0644);
  EXPECT_THROW(w.add_file("/a", "", 0644), ImageError);
  EXPECT_THROW(w.add_symlink("a", "b"), ImageError);
  EXPECT_THROW(w.add_file("a/b", "", 0644), ImageError);
  EXPECT_THROW(w.add_file("c", "", 010644), ImageError);  // type bits are not mode bits
  EXPECT_THROW(w.add_symlink("s", ""), ImageError);
}

TEST(CpioWriter, ImplicitParentCanBeMadeExplicitOnce) {
  CpioWriter w;
  w.add_file("root/.profile", "", 0644);
  EXPECT_TRUE(w.contains("/root"));
  EXPECT_EQ(w.entries().at("root").mode, 0755u);
  w.add_directory("root", 0700);
  EXPECT_EQ(w.entries().at("root").mode, 0700u);
  EXPECT_THROW(w.add_directory("root", 0700), ImageError);
  EXPECT_THROW(w.add_file("root", "", 0644), ImageError);
}

TEST(CpioWriter, HostFileIsCopied) {
  TempDir dir;
  const std::string host = dir / "payload";
  std::string payload;
  for (int i = 0; i < 100000; ++i) payload.push_back(static_cast<char>(i * 7));
  test::write_bytes(host,
                    std::span(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
  CpioWriter w;
  w.add_file_from_host("opt/payload", host, 0600);
  EXPECT_EQ(w.entries().at("opt/payload").data, payload);
  EXPECT_THROW(w.add_file_from_host("d", dir.path().string(), 0600), ImageError);  // a directory
}

}  // namespace
}  // namespace forkvm
