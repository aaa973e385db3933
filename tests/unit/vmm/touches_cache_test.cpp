// A snapshot memory file's first touches kept across processes (vmm/touches_cache.hpp): the
// entry round-trips, anything but the exact format counts as none, and entries are found by the
// memory file's stamp only once its times had settled.
#include "vmm/touches_cache.hpp"

#include <gtest/gtest.h>
#include <time.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

#include "tests/support/stamp_cache_for.hpp"
#include "tests/support/temp_dir.hpp"
#include "vmm/touched_memory.hpp"

namespace forkvm {
namespace {

constexpr uint64_t kMemory = 64ull << 20;
constexpr uint64_t kPage = 4096;

TouchedMemory sample() {
  TouchedMemory t;
  t.written = {{0, kPage}, {16 * kPage, 8 * kPage}};
  t.read = {{4 * kPage, 2 * kPage}, {kMemory - kPage, kPage}};
  return t;
}

/// The header lines of an entry for kMemory with `lessons`, ready for range lines.
std::string header(unsigned lessons = 2) {
  return "forkvm-first-touches 1\nmemory " + std::to_string(kMemory) + "\nlessons " +
         std::to_string(lessons) + "\n";
}

bool decodes(const std::string& text) { return decode_first_touches(text, kMemory).has_value(); }

TEST(TouchesCacheTest, AnEntryDecodesToWhatWasEncoded) {
  const std::string text = encode_first_touches(sample(), kMemory, 2);
  const std::optional<KeptTouches> back = decode_first_touches(text, kMemory);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->lessons, 2u);
  EXPECT_EQ(back->touches.written, sample().written);
  EXPECT_EQ(back->touches.read, sample().read);
  // An empty set is an entry too (a first exec that touched nothing new).
  EXPECT_TRUE(decodes(encode_first_touches(TouchedMemory{}, kMemory, 1)));
}

TEST(TouchesCacheTest, AnythingButTheExactFormatCountsAsNone) {
  const std::string good = encode_first_touches(sample(), kMemory, 2);
  EXPECT_FALSE(decode_first_touches(good, kMemory + kPage)) << "another memory size";
  EXPECT_FALSE(decodes(good.substr(0, good.size() - 1))) << "the last line cut short";
  EXPECT_FALSE(decodes("forkvm-first-touches 2\n" + good.substr(good.find('\n') + 1)));
  EXPECT_FALSE(decodes(header(0)));
  EXPECT_FALSE(decodes(header(kFirstTouchLessons + 1)));
  EXPECT_TRUE(decodes(header() + "w 0 4096\n"));
  const std::string past_end = "w 4096 " + std::to_string(kMemory) + "\n";
  for (const std::string& bad : std::initializer_list<std::string>{
           "w 1 4096\n",                           // not page-aligned
           "w 0 4095\n",                           // not whole pages
           "w 0 0\n",                              // empty
           past_end,
           "w 18446744073709547520 8192\n",        // offset + length wraps
           "w 00 4096\n",                          // leading zero
           "w -0 4096\n",                          // sign
           "w  0 4096\n",                          // two spaces
           "w 0 4096 \n",                          // trailing space
           "x 0 4096\n",                           // unknown kind
           "w 8192 4096\nw 0 4096\n",              // unsorted
           "w 0 8192\nw 4096 4096\n",              // overlapping
           "r 0 4096\nw 8192 4096\n",              // written after read
           "\n",                                   // empty line
       }) {
    EXPECT_FALSE(decodes(header() + bad)) << bad;
  }
  EXPECT_TRUE(decodes(header() + "w 0 4096\nw 4096 4096\nr 0 4096\n"))
      << "adjacent ranges, and a read list of its own order";
}

TEST(TouchesCacheTest, MoreRangesThanTheLimitCountAsNone) {
  constexpr uint64_t kBig = 1ull << 40;  // room for every range
  std::string text = "forkvm-first-touches 1\nmemory " + std::to_string(kBig) + "\nlessons 1\n";
  for (uint64_t i = 0; i < kMaxKeptTouchRanges; ++i) {
    text += "w " + std::to_string(2 * i * kPage) + " 4096\n";
  }
  ASSERT_TRUE(decode_first_touches(text, kBig)) << "the limit itself";
  for (uint64_t i = kMaxKeptTouchRanges; i <= kMaxKeptTouchRanges; ++i) {
    text += "w " + std::to_string(2 * i * kPage) + " 4096\n";
  }
  EXPECT_FALSE(decode_first_touches(text, kBig));
}

/// Points the stamp cache at a fresh directory for one test, and back after it.
class KeptTouchesTest : public ::testing::Test {
 protected:
  /// A memory file's stamp whose times are `age_s` seconds before now.
  static FileStamp stamp(uint64_t ino, int64_t age_s) {
    return test::aged_stamp(ino, age_s, kMemory);
  }
  static struct timespec now() { return test::realtime_now(); }

  test::TempDir dir_{"fvtc"};
  test::StampCacheFor cache_env_{dir_ / "stamped"};
};

TEST_F(KeptTouchesTest, KeptForASettledMemoryFileAndFoundByItsStamp) {
  const FileStamp s = stamp(7, 60);
  EXPECT_FALSE(cached_first_touches(s, kMemory));
  keep_first_touches(s, sample(), kMemory, 3, now());
  const std::optional<KeptTouches> kept = cached_first_touches(s, kMemory);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->lessons, 3u);
  EXPECT_EQ(kept->touches.written, sample().written);
  FileStamp changed = s;
  changed.mtime_ns = 1;  // the file was written since
  EXPECT_FALSE(cached_first_touches(changed, kMemory));
  EXPECT_FALSE(cached_first_touches(s, kMemory * 2)) << "a memory size the entry is not for";
}

TEST_F(KeptTouchesTest, AMemoryFileWrittenJustBeforeItWasReadIsNotKept) {
  const FileStamp fresh = stamp(8, 0);
  keep_first_touches(fresh, sample(), kMemory, 1, now());
  EXPECT_FALSE(cached_first_touches(fresh, kMemory));
}

}  // namespace
}  // namespace forkvm
