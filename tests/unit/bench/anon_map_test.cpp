// Sorting /proc/self/smaps mappings by kind (bench/anon_map.hpp).
#include "bench/anon_map.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>
#include <vector>

namespace forkvm::bench {
namespace {

constexpr const char* kSmaps =
    "55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]\n"
    "Size:                132 kB\n"
    "Rss:                  40 kB\n"
    "Anonymous:            40 kB\n"
    "7f0000000000-7f0010000000 rw-p 00000000 00:01 1234                       /memfd:forkvm-ram (deleted)\n"
    "Size:             262144 kB\n"
    "Anonymous:          1800 kB\n"
    "7f1000000000-7f1000001000 ---p 00000000 00:00 0 \n"
    "Anonymous:             0 kB\n"
    "7f1000001000-7f1000801000 rw-p 00000000 00:00 0 \n"
    "Anonymous:            12 kB\n"
    "7f2000000000-7f2000040000 rw-p 00000000 00:00 0 \n"
    "Anonymous:             8 kB\n"
    "VmFlags: rd wr mr mw me ac\n"
    "7f3000000000-7f3000100000 r--p 00000000 08:01 99                         /usr/lib/a file.so\n"
    "Anonymous:             4 kB\n"
    "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]\n"
    "Anonymous:            16 kB\n";

TEST(AnonMap, SortsMappingsByPathAndStackPointer) {
  const AnonBreakdown b = anon_breakdown_from(kSmaps, {0x7f10007ff000});
  EXPECT_EQ(b.mappings, 7u);
  EXPECT_EQ(b.heap, 40u * 1024);
  EXPECT_EQ(b.file_private, (1800u + 4u) * 1024);  // the library's line too: any "/..." path
  EXPECT_EQ(b.stacks, (12u + 16u) * 1024);          // the thread's and [stack]
  EXPECT_EQ(b.other, 8u * 1024);
}

TEST(AnonMap, WithoutStackPointersAThreadStackIsOther) {
  const AnonBreakdown b = anon_breakdown_from(kSmaps, {});
  EXPECT_EQ(b.stacks, 16u * 1024);
  EXPECT_EQ(b.other, (12u + 8u) * 1024);
}

TEST(AnonMap, MalformedLinesAreSkipped) {
  const AnonBreakdown b = anon_breakdown_from(
      "Anonymous: 5 kB\nzz-yy rw-p 0 0 0\nnot a line\n7f-80 rw-p 0 00:00\nAnonymous: 7 kB\n", {});
  EXPECT_EQ(b.mappings, 0u);
  EXPECT_EQ(b.other + b.heap + b.stacks + b.file_private, 0u);
}

TEST(AnonMap, ThisProcessesBlockedThreadsAreFoundOnTheirStacks) {
  // A thread blocked in a call: its stack pointer lies in a mapping of its own.
  std::thread t([] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::vector<uint64_t> sps = thread_stack_pointers();
  const AnonBreakdown b = read_anon_breakdown();
  t.join();
  EXPECT_GE(sps.size(), 1u);
  EXPECT_GT(b.mappings, 10u);
  EXPECT_GT(b.stacks, 0u);
}

}  // namespace
}  // namespace forkvm::bench
