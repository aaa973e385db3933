// unit tier: write_snapshot() / open_snapshot() round trip, sparseness, atomic creation, and
// every kind of damaged snapshot directory rejected with a message naming the file and fault.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <functional>

#include "forkvm/errors.hpp"
#include "snapshot/memory_digest.hpp"
#include "tests/unit/snapshot/snapshot_fixture.hpp"

namespace forkvm::snapshot {
namespace {

using namespace test;

/// Expects open_snapshot(dir) to throw SnapshotError whose message contains every `part`.
std::string expect_rejected(const fs::path& dir, std::initializer_list<std::string> parts,
                            OpenOptions options = {}) {
  try {
    open_snapshot(dir, options);
  } catch (const SnapshotError& e) {
    const std::string msg = e.what();
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "snapshot in " << dir << " was accepted";
  return "";
}

/// Makes `j` a format 1.3 state (a whole-file digest, no chunk digests), for edits of the
/// memory size that a chunk list would refuse first. Returns `j`.
nlohmann::json& as_format_1(nlohmann::json& j) {
  j["format"] = {{"major", 1}, {"minor", 3}};
  j["memory"].erase("chunks");
  j["memory"]["sha256"] = std::string(64, 'a');
  return j;
}

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override { written_ = write_test_snapshot(snap()); }
  fs::path snap() const { return tmp_.path() / "snap"; }
  fs::path file(const char* name) const { return snap() / name; }

  TempDir tmp_;
  WrittenSnapshot written_;
};

TEST_F(SnapshotTest, RoundTripRestoresConfigComponentsAndMemory) {
  const SnapshotFiles f = open_snapshot(snap());
  EXPECT_TRUE(f.memory_verified);
  EXPECT_EQ(f.state.format, (FormatVersion{2, kFormatMinor}));
  EXPECT_EQ(f.state.machine, test_machine());
  EXPECT_EQ(f.state.components, test_components());
  EXPECT_EQ(f.state.memory_size, kTestMib << 20);
  EXPECT_EQ(f.state.memory_chunks, written_.memory);
  EXPECT_EQ(f.state.memory_sha256, "") << "format 2 records no whole-file digest";
  EXPECT_EQ(f.state_sha256, written_.state_sha256);
  EXPECT_EQ(f.state.forkvm_version, forkvm_version());
  EXPECT_EQ(f.state.created.size(), 20u) << f.state.created;  // 2024-01-02T03:04:05Z
  ASSERT_TRUE(f.memory_fd);

  // The file holds the pattern pages at their guest-physical offsets and zeros elsewhere.
  std::vector<uint8_t> page(kPage);
  for (uint64_t gpa : pattern_pages()) {
    ASSERT_EQ(pread(f.memory_fd.get(), page.data(), kPage, static_cast<off_t>(gpa)),
              static_cast<ssize_t>(kPage));
    for (uint64_t i = 0; i < kPage; ++i) ASSERT_EQ(page[i], pattern_byte(gpa + i)) << gpa + i;
  }
  ASSERT_EQ(pread(f.memory_fd.get(), page.data(), kPage, 2 * 0x100000),
            static_cast<ssize_t>(kPage));
  for (uint8_t b : page) ASSERT_EQ(b, 0);

  // Each chunk's digest is the digest of its plain bytes: hash an in-memory copy independently.
  const GuestMemory mem = patterned_memory();
  ASSERT_EQ(written_.memory.sha256.size(), mem.size() / kMemoryChunkBytes);
  for (uint64_t i = 0; i < written_.memory.sha256.size(); ++i) {
    EXPECT_EQ(written_.memory.sha256[i],
              Sha256::of(mem.slice(i * kMemoryChunkBytes, kMemoryChunkBytes))) << "chunk " << i;
  }
}

TEST_F(SnapshotTest, MemoryFileIsSparse) {
  struct stat st {};
  ASSERT_EQ(stat(file(kMemoryFile).c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kTestMib << 20);
  const uint64_t allocated = static_cast<uint64_t>(st.st_blocks) * 512;
  // Four data pages; filesystems allocate in blocks, so allow generous slack but far below 64 MiB.
  EXPECT_LT(allocated, 4u << 20) << "allocated " << allocated;
  EXPECT_EQ(open_snapshot(snap()).memory_allocated, allocated);
}

TEST_F(SnapshotTest, DirectoryHoldsExactlyTheThreeFilesAndNoTemporaries) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(snap())) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"memory", "state.json", "state.json.sha256"}));
  for (const auto& e : fs::directory_iterator(tmp_.path())) {
    EXPECT_EQ(e.path().filename(), "snap") << "left behind: " << e.path();
  }
  // sha256sum(1) form, so `sha256sum -c state.json.sha256` works in the directory.
  EXPECT_EQ(read_file(file(kStateDigestFile)), written_.state_sha256 + "  state.json\n");
  EXPECT_EQ(Sha256::of(read_file(file(kStateFile))), written_.state_sha256);
}

TEST_F(SnapshotTest, WriterRefusesAnExistingDirectoryAndBadInput) {
  const GuestMemory mem = patterned_memory();
  EXPECT_THROW(write_snapshot(snap(), test_machine(), test_components(), mem), SnapshotError);
  fs::create_directory(tmp_.path() / "empty");
  EXPECT_THROW(write_snapshot(tmp_.path() / "empty", test_machine(), test_components(), mem),
               SnapshotError);

  MachineConfig wrong_size = test_machine();
  wrong_size.memory_mib = 128;
  EXPECT_THROW(write_snapshot(tmp_.path() / "a", wrong_size, test_components(), mem),
               SnapshotError);
  EXPECT_THROW(write_snapshot(tmp_.path() / "b", test_machine(), nlohmann::json::array(), mem),
               SnapshotError);
  EXPECT_THROW(write_snapshot(tmp_.path() / "c", test_machine(),
                              {{"bad name/", nlohmann::json::object()}}, mem),
               SnapshotError);
  EXPECT_THROW(write_snapshot(tmp_.path() / "d", test_machine(), {{"serial", 5}}, mem),
               SnapshotError);
  // Nothing was left behind by the refused writes.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(tmp_.path())) ++entries;
  EXPECT_EQ(entries, 2u);  // snap and empty
}

TEST_F(SnapshotTest, TrailingSlashNamesTheSameDirectory) {
  const GuestMemory mem = patterned_memory();
  write_snapshot(tmp_.path().string() + "/other/", test_machine(), test_components(), mem);
  EXPECT_TRUE(open_snapshot(tmp_.path() / "other").memory_verified);
}

TEST_F(SnapshotTest, MissingDirectoryOrFiles) {
  expect_rejected(tmp_.path() / "nope", {"nope", "does not exist"});
  expect_rejected(file(kMemoryFile), {"is not a directory"});
  for (const char* name : {kStateFile, kStateDigestFile, kMemoryFile}) {
    TempDir t;
    write_test_snapshot(t.path() / "snap");
    fs::remove(t.path() / "snap" / name);
    expect_rejected(t.path() / "snap", {(t.path() / "snap" / name).string(), "is missing"});
  }
}

TEST_F(SnapshotTest, NonRegularFilesAreRejectedWithoutBlocking) {
  fs::remove(file(kMemoryFile));
  fs::create_directory(file(kMemoryFile));
  expect_rejected(snap(), {"memory", "not a regular file"});
  fs::remove(file(kMemoryFile));
  // A FIFO would block a plain open() until a writer appears; the reader must not wait.
  ASSERT_EQ(mkfifo(file(kMemoryFile).c_str(), 0600), 0);
  expect_rejected(snap(), {"memory", "not a regular file"});
  fs::remove(file(kStateFile));
  fs::create_symlink(tmp_.path(), file(kStateFile));  // a symlink to a directory
  expect_rejected(snap(), {"state.json", "not a regular file"});
}

TEST_F(SnapshotTest, UnreadableFile) {
  if (geteuid() == 0) {
    GTEST_SKIP() << "running as root: root reads a chmod 000 file anyway, so this case cannot be "
                    "produced (the open error path is still covered by the missing-file cases)";
  }
  fs::permissions(file(kStateFile), fs::perms::none);
  expect_rejected(snap(), {"state.json", "cannot open state file", "Permission denied"});
}

TEST_F(SnapshotTest, FlippedByteInStateJson) {
  flip_byte(file(kStateFile), 40);
  expect_rejected(snap(), {"state.json", "SHA-256 mismatch", written_.state_sha256});
}

TEST_F(SnapshotTest, DigestFileMustHoldADigest) {
  write_file(file(kStateDigestFile), "not a digest\n");
  expect_rejected(snap(), {"state.json.sha256", "does not hold a SHA-256"});
  write_file(file(kStateDigestFile), std::string(300, 'a'));
  expect_rejected(snap(), {"state.json.sha256", "too large"});
  // The bare form (no file name) is accepted too.
  write_file(file(kStateDigestFile), written_.state_sha256);
  EXPECT_NO_THROW(open_snapshot(snap()));
}

TEST_F(SnapshotTest, FlippedByteInMemoryDataAndInAHole) {
  // Checked chunk by chunk (format 1.4): the message names the chunk and its bytes.
  const auto& chunks = open_snapshot(snap()).state.memory_chunks;
  ASSERT_TRUE(chunks);
  flip_byte(file(kMemoryFile), 0x100000 + kPage + 100);  // a pattern page, in chunk 0
  expect_rejected(snap(), {"memory", "SHA-256 mismatch in bytes [0x0, 0x400000) (chunk 0 of 16)",
                           chunks->sha256[0]});
  // Without memory verification (a Template's forks) the same file opens: the option works.
  EXPECT_FALSE(open_snapshot(snap(), {.verify_memory = false}).memory_verified);
  flip_byte(file(kMemoryFile), 0x100000 + kPage + 100);  // restore
  EXPECT_TRUE(open_snapshot(snap()).memory_verified);
  // Inside a chunk that was all hole: the flip allocates a page, so the chunk is read now.
  flip_byte(file(kMemoryFile), 40 * 0x100000);
  expect_rejected(snap(), {"memory", "SHA-256 mismatch in bytes [0x2800000, 0x2c00000) (chunk 10"});
  flip_byte(file(kMemoryFile), 40 * 0x100000);  // back to zero, but now data, not a hole
  EXPECT_TRUE(open_snapshot(snap()).memory_verified) << "a chunk of zeros that is data passes";

  // A format 1.3 snapshot (no chunk digests): the whole-file digest is checked.
  const GuestMemory mem = patterned_memory();
  const std::string whole = Sha256::of(mem.slice(0, mem.size()));
  edit_state(snap(), [&](nlohmann::json& j) {
    j["format"] = {{"major", 1}, {"minor", 3}};
    j["memory"].erase("chunks");
    j["memory"]["sha256"] = whole;
  });
  EXPECT_TRUE(open_snapshot(snap()).memory_verified);
  flip_byte(file(kMemoryFile), 0x100000 + kPage + 100);
  expect_rejected(snap(), {"memory", "SHA-256 mismatch: state.json says", whole});
}

TEST_F(SnapshotTest, ChunkDigestsCoverTheMemoryAndSkipItsHoles) {
  const SnapshotFiles f = open_snapshot(snap());
  ASSERT_TRUE(f.state.memory_chunks);
  const MemoryChunks& c = *f.state.memory_chunks;
  EXPECT_EQ(c.size, kMemoryChunkBytes);
  ASSERT_EQ(c.sha256.size(), (kTestMib << 20) / kMemoryChunkBytes);
  // The pattern pages are in chunks 0 (two of them), 4 and 15; every other chunk is zeros.
  const std::string zeros = zero_digest(kMemoryChunkBytes);
  for (size_t i = 0; i < c.sha256.size(); ++i) {
    const bool data = i == 0 || i == 4 || i == 15;
    EXPECT_EQ(c.sha256[i] == zeros, !data) << "chunk " << i;
  }
  // The copy holds exactly the file's bytes: data where it has data, zeros in the holes.
  std::vector<uint8_t> page(kPage);
  for (uint64_t gpa : pattern_pages()) {
    ASSERT_EQ(pread(f.memory_fd.get(), page.data(), kPage, static_cast<off_t>(gpa)),
              static_cast<ssize_t>(kPage));
    for (uint64_t i = 0; i < kPage; i += 511) ASSERT_EQ(page[i], pattern_byte(gpa + i)) << gpa + i;
  }
  ASSERT_EQ(pread(f.memory_fd.get(), page.data(), kPage, 33 * 0x100000), static_cast<ssize_t>(kPage));
  EXPECT_EQ(std::count(page.begin(), page.end(), 0), static_cast<long>(kPage));
  // The digest of a chunk of zeros is SHA-256 of that many zero bytes.
  EXPECT_EQ(zero_digest(0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_F(SnapshotTest, ChunkListMustFitTheMemory) {
  const auto rejected_edit = [&](const std::function<void(nlohmann::json&)>& edit,
                                 std::initializer_list<std::string> parts) {
    const std::string saved = read_file(file(kStateFile));
    edit_state(snap(), edit);
    expect_rejected(snap(), parts, {.verify_memory = false});  // refused by the parser itself
    replace_state(snap(), saved);
  };
  rejected_edit([](nlohmann::json& j) { j["memory"]["chunks"]["sha256"].erase(0); },
                {"state.json", "memory.chunks.sha256", "15 digests for the 16 chunks"});
  rejected_edit([](nlohmann::json& j) { j["memory"]["chunks"]["size"] = 8u << 20; },
                {"memory.chunks.sha256", "16 elements, at most 8"});  // the 8 chunks of 8 MiB
  rejected_edit([](nlohmann::json& j) { j["memory"]["chunks"]["size"] = 4096; },
                {"memory.chunks.size"});  // below the smallest chunk accepted
  rejected_edit([](nlohmann::json& j) { j["memory"]["chunks"]["size"] = (4u << 20) + 1; },
                {"memory.chunks.size", "not a multiple of 4096"});
  rejected_edit([](nlohmann::json& j) { j["memory"]["chunks"]["sha256"][3] = "00"; },
                {"memory.chunks.sha256", "element 3 is not 64 lowercase hex digits"});
  rejected_edit([](nlohmann::json& j) { j["memory"]["chunks"]["sha256"][3] = 7; },
                {"memory.chunks.sha256", "element 3"});
  rejected_edit([](nlohmann::json& j) { j["memory"]["chunks"]["extra"] = 1; },
                {"memory.chunks", "extra"});
  // A forged digest list that matches another file: each chunk is still checked.
  const std::string saved = read_file(file(kStateFile));
  edit_state(snap(), [](nlohmann::json& j) {
    j["memory"]["chunks"]["sha256"][15] = j["memory"]["chunks"]["sha256"][1];  // zeros
  });
  expect_rejected(snap(), {"memory", "(chunk 15 of 16)"});
  replace_state(snap(), saved);
  EXPECT_TRUE(open_snapshot(snap()).memory_verified);
}

TEST_F(SnapshotTest, TruncatedOrExtendedMemoryIsRejectedEvenWithoutVerification) {
  const uint64_t size = kTestMib << 20;
  fs::resize_file(file(kMemoryFile), size - kPage);
  expect_rejected(snap(),
                  {"memory", "truncated", std::to_string(size - kPage), std::to_string(size)},
                  {.verify_memory = false});
  fs::resize_file(file(kMemoryFile), size + 1);
  expect_rejected(snap(), {"memory", "longer than", std::to_string(size + 1)},
                  {.verify_memory = false});
  fs::resize_file(file(kMemoryFile), 0);
  expect_rejected(snap(), {"memory", "truncated"});
}

TEST_F(SnapshotTest, OversizedStateJsonIsRejectedBeforeReading) {
  // A sparse 1 GiB state.json: reading it would take seconds and 1 GiB of RAM. Its digest no
  // longer matches, so a reader that read (and hashed) it before checking the size would report
  // a SHA-256 mismatch; the size message proves the cap came first.
  fs::resize_file(file(kStateFile), uint64_t{1} << 30);
  const std::string msg =
      expect_rejected(snap(), {"state.json", "1073741824 bytes", "over the limit"});
  EXPECT_EQ(msg.find("SHA-256"), std::string::npos) << msg;
  // The cap is an option; a small cap rejects even the genuine file.
  TempDir t;
  write_test_snapshot(t.path() / "s");
  expect_rejected(t.path() / "s", {"over the limit of 100"}, {.max_state_bytes = 100});
}

TEST_F(SnapshotTest, MalformedJson) {
  replace_state(snap(), "{\"format\": {\"major\": 1,");
  expect_rejected(snap(), {"state.json", "malformed JSON"});
  replace_state(snap(), "");
  expect_rejected(snap(), {"state.json", "malformed JSON"});
  replace_state(snap(), std::string(10000, '[') + std::string(10000, ']'));
  expect_rejected(snap(), {"state.json", "nested deeper than 64"});
  replace_state(snap(), "[1, 2]");
  expect_rejected(snap(), {"state.json", "the top level: expected an object, got array"});
  replace_state(snap(), "{\"format\": {\"major\": 1, \"minor\": 0}, \"x\": \"\xff\"}");
  expect_rejected(snap(), {"state.json", "malformed JSON"});
}

TEST_F(SnapshotTest, UnknownMajorVersionIsNamed) {
  edit_state(snap(), [](nlohmann::json& j) {
    j["format"]["major"] = 3;
    j["machine"] = "a version 3 layout";  // the version is checked before anything else
  });
  expect_rejected(snap(), {"state.json", "major version 3 is not supported", "1.x and 2.x"});
}

TEST_F(SnapshotTest, NewerMinorVersionAndUnknownFieldsAreAccepted) {
  edit_state(snap(), [](nlohmann::json& j) {
    j["format"]["minor"] = 7;
    j["added_in_2_7"] = {{"anything", true}};
  });
  EXPECT_EQ(open_snapshot(snap()).state.format, (FormatVersion{2, 7}));
}

TEST_F(SnapshotTest, MemoryMibMustMatchTheMemorySize) {
  edit_state(snap(), [](nlohmann::json& j) { j["machine"]["memory_mib"] = 128; });
  expect_rejected(snap(),
                  {"state.json", "memory.size: 67108864 does not match machine.memory_mib 128"});
  // Consistent config but a memory file of the old size: caught by size, before any hashing.
  // (As format 1.3, without the chunk digests, whose count no longer fits: ChunkListMustFitTheMemory.)
  edit_state(snap(), [](nlohmann::json& j) { as_format_1(j)["memory"]["size"] = 128ull << 20; });
  expect_rejected(snap(), {"memory", "truncated", "67108864", "134217728"});
}

TEST_F(SnapshotTest, MemoryFileFieldCannotPointElsewhere) {
  edit_state(snap(), [](nlohmann::json& j) { j["memory"]["file"] = "../../etc/passwd"; });
  expect_rejected(snap(), {"memory.file", "must be 'memory'"});
}

TEST_F(SnapshotTest, ErrorsNeverCrashOnSizesNearTheLimits) {
  // A 1 TiB claim with a 64 MiB file: rejected by the size comparison, nothing allocated.
  edit_state(snap(), [](nlohmann::json& j) {
    j["machine"]["memory_mib"] = uint64_t{1} << 20;
    as_format_1(j)["memory"]["size"] = uint64_t{1} << 40;
  });
  expect_rejected(snap(), {"memory", "truncated", "1099511627776"});
}

TEST_F(SnapshotTest, MappedMemoryIsTheSnapshotCopyOnWrite) {
  SnapshotFiles f = open_snapshot(snap());
  GuestMemory a = map_snapshot_memory(f);
  GuestMemory b = map_snapshot_memory(f);
  ASSERT_EQ(a.size(), kTestMib << 20);
  for (uint64_t gpa : pattern_pages()) {
    EXPECT_EQ(a.read_obj<uint8_t>(gpa + 5), pattern_byte(gpa + 5));
    EXPECT_EQ(b.read_obj<uint8_t>(gpa + 5), pattern_byte(gpa + 5));
  }
  // Writes stay in the mapping that made them: not in the sibling, not in the file.
  a.write_obj<uint64_t>(0, 0x1122334455667788ull);
  a.write_obj<uint8_t>(30 * 0x100000, 0xAB);  // a hole in the file
  EXPECT_EQ(b.read_obj<uint8_t>(0), pattern_byte(0));
  EXPECT_EQ(b.read_obj<uint8_t>(30 * 0x100000), 0);
  EXPECT_TRUE(open_snapshot(snap()).memory_verified);
  // A SnapshotFiles whose descriptor was given away cannot be mapped.
  SnapshotFiles moved = std::move(f);
  try {
    map_snapshot_memory(f);  // NOLINT(bugprone-use-after-move): the point of the test
    ADD_FAILURE() << "mapped a closed memory file";
  } catch (const SnapshotError& e) {
    EXPECT_NE(std::string(e.what()).find("memory file is not open"), std::string::npos) << e.what();
  }
  EXPECT_EQ(map_snapshot_memory(moved).read_obj<uint8_t>(1), pattern_byte(1));
}

TEST_F(SnapshotTest, MemfdBackedMemoryWritesTheSameSnapshot) {
  GuestMemory mem = GuestMemory::create_memfd(kTestMib << 20);
  const GuestMemory reference = patterned_memory();
  for (uint64_t gpa : pattern_pages()) mem.write(gpa, reference.slice(gpa, kPage));
  struct stat before {}, after {};
  ASSERT_EQ(fstat(mem.backing_fd(), &before), 0);
  const WrittenSnapshot w =
      write_snapshot(tmp_.path() / "memfd", test_machine(), test_components(), mem);
  EXPECT_EQ(w.memory, written_.memory);
  const SnapshotFiles f = open_snapshot(tmp_.path() / "memfd");
  EXPECT_TRUE(f.memory_verified);
  EXPECT_EQ(f.state.memory_chunks, open_snapshot(snap()).state.memory_chunks);
  // The writer read only the memfd's data: its holes were not allocated by being read.
  ASSERT_EQ(fstat(mem.backing_fd(), &after), 0);
  EXPECT_EQ(after.st_blocks, before.st_blocks) << "writing the snapshot allocated RAM";
  EXPECT_LE(after.st_blocks * 512, static_cast<long>(pattern_pages().size() * kPage));
}

TEST_F(SnapshotTest, ImageBackedMemoryWritesTheSameSnapshotWithoutFaultingItIn) {
  // A restored VM's RAM: the snapshot's memory mapped copy-on-write, plus one page it wrote.
  const SnapshotFiles f = open_snapshot(snap());
  GuestMemory mem = map_snapshot_memory(f);
  const uint64_t gpa = 9 * 0x100000;
  std::vector<uint8_t> page(kPage, 0x5a);
  mem.write(gpa, page);
  const WrittenSnapshot w =
      write_snapshot(tmp_.path() / "again", test_machine(), test_components(), mem);
  const SnapshotFiles g = open_snapshot(tmp_.path() / "again");
  ASSERT_TRUE(g.memory_verified);
  const GuestMemory view = map_snapshot_memory(g);
  EXPECT_EQ(view.read_obj<uint8_t>(gpa + 100), 0x5a);
  for (uint64_t p : pattern_pages()) EXPECT_EQ(view.read_obj<uint8_t>(p + 9), pattern_byte(p + 9));
  EXPECT_EQ(view.read_obj<uint8_t>(30 * 0x100000), 0);
  EXPECT_NE(w.memory, written_.memory);
  // Only the image's data and the written page were read: the rest of this RAM was never
  // touched (pagemap: nothing present outside those pages).
  const auto touched = mem.touched_extents();
  uint64_t touched_bytes = 0;
  for (const auto* v : {&touched.written, &touched.read}) {
    for (const auto& e : *v) touched_bytes += e.length;
  }
  EXPECT_LE(touched_bytes, 64 * kPage) << "the writer faulted in RAM that holds only zeros";
}

TEST_F(SnapshotTest, FilesAndDirectoryOthersCouldChangeAreRefused) {
  for (const char* name : {kMemoryFile, kStateFile, kStateDigestFile}) {
    for (auto mode : {fs::perms::owner_read | fs::perms::group_write,
                      fs::perms::owner_read | fs::perms::others_write}) {
      fs::permissions(file(name), mode);
      expect_rejected(snap(), {name, "writable by group or others"});
    }
    fs::permissions(file(name), fs::perms::owner_read | fs::perms::owner_write);
  }
  // A second name (in a directory someone else may control) could change it.
  fs::create_hard_link(file(kMemoryFile), tmp_.path() / "other-name");
  expect_rejected(snap(), {"memory", "2 hard links"});
  fs::remove(tmp_.path() / "other-name");
  EXPECT_NO_THROW(open_snapshot(snap()));
  fs::permissions(snap(), fs::perms::owner_all | fs::perms::group_all);
  expect_rejected(snap(), {"snapshot directory", "writable by group or others"});
  fs::permissions(snap(), fs::perms::owner_all);
  if (geteuid() == 0) {  // only root can give a file away
    ASSERT_EQ(::chown(file(kStateFile).c_str(), 65534, 65534), 0);
    expect_rejected(snap(), {"state.json", "belongs to uid 65534"});
  }
}

// A verified snapshot maps a sealed copy: the memory file truncated after open cannot reach the
// mapping (mapped, the file itself would SIGBUS this process on the next read of a lost page).
TEST_F(SnapshotTest, VerifiedMemoryIsASealedCopyThatTruncationCannotReach) {
  const SnapshotFiles f = open_snapshot(snap());
  ASSERT_TRUE(f.memory_verified);
  fs::resize_file(file(kMemoryFile), 0);
  flip_byte(file(kStateFile), 3);  // nor does any later change to the directory
  GuestMemory m = map_snapshot_memory(f);
  for (uint64_t gpa : pattern_pages()) {
    EXPECT_EQ(m.read_obj<uint8_t>(gpa + 7), pattern_byte(gpa + 7));  // SIGBUS if the file
  }
  EXPECT_EQ(m.read_obj<uint8_t>(30 * 0x100000), 0);
  // The copy cannot be shrunk, grown or written by anyone holding it.
  EXPECT_NE(::ftruncate(f.memory_fd.get(), 0), 0);
  EXPECT_EQ(::fcntl(f.memory_fd.get(), F_GET_SEALS) & F_SEAL_WRITE, F_SEAL_WRITE);
}

// Unverified (a snapshot the caller trusts), the file itself is mapped: truncated after open,
// the next mapping is refused with a typed error instead of faulting later.
TEST_F(SnapshotTest, UnverifiedMemoryTruncatedAfterOpenIsRefusedWhenMapped) {
  const SnapshotFiles f = open_snapshot(snap(), {.verify_memory = false});
  fs::resize_file(file(kMemoryFile), kPage);
  EXPECT_THROW(map_snapshot_memory(f), SnapshotError);
}

}  // namespace
}  // namespace forkvm::snapshot
