// start_thread() keeps transparent huge pages off the unused part of a new thread's stack
// (keep_stack_small()): the kernel's VMA flags for that part say "nh" (VM_NOHUGEPAGE).
#include <pthread.h>
#include <sys/mman.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "base/thread_launcher.hpp"

namespace forkvm {
namespace {

/// The line starting with `key` in the /proc/self/smaps entry that holds `addr` ("" if none).
std::string smaps_line_at(uintptr_t addr, const std::string& key) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = addr >= lo && addr < hi;
      continue;
    }
    if (inside && line.rfind(key, 0) == 0) return line;
  }
  return "";
}

/// The VmFlags line of the entry that holds `addr`.
std::string vm_flags_at(uintptr_t addr) { return smaps_line_at(addr, "VmFlags:"); }

/// Its resident KiB; -1 if no entry holds `addr`.
long rss_at(uintptr_t addr) {
  long kib = -1;
  std::sscanf(smaps_line_at(addr, "Rss:").c_str(), "Rss: %ld kB", &kib);
  return kib;
}

bool has_flag(const std::string& flags, const std::string& flag) {
  return (flags + " ").find(" " + flag + " ") != std::string::npos;
}

struct StackFlags {
  std::string below_before, below_after, frame_after;
  long rss_below_before = 0, rss_below_after = 0;  // KiB
};

/// Uses 512 KiB of stack under the caller's frame, as a deep call would.
[[gnu::noinline]] void use_stack() {
  volatile char deep[512 * 1024];
  for (size_t i = 0; i < sizeof(deep); i += 4096) deep[i] = 1;
}

/// On a stack of our own (mmap without MAP_STACK, which kernels since 6.7 mark "nh" already):
/// the flags 1 MiB under the frame before and after keep_stack_small(), and at the frame.
void* probe(void* arg) {
  auto* out = static_cast<StackFlags*>(arg);
  const auto here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  use_stack();
  out->below_before = vm_flags_at(here - (1u << 20));
  out->rss_below_before = rss_at(here - (1u << 20));
  keep_stack_small();
  out->below_after = vm_flags_at(here - (1u << 20));
  out->rss_below_after = rss_at(here - (1u << 20));
  out->frame_after = vm_flags_at(here);
  return nullptr;
}

TEST(ThreadStack, KeepStackSmallAdvisesOnlyBelowTheFrame) {
  constexpr size_t kSize = 8u << 20;
  void* stack = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(stack, MAP_FAILED);
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstack(&attr, stack, kSize), 0);
  StackFlags flags;
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, &attr, probe, &flags), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  munmap(stack, kSize);
  ASSERT_FALSE(flags.below_before.empty());
  EXPECT_FALSE(has_flag(flags.below_before, "nh")) << flags.below_before;
  EXPECT_TRUE(has_flag(flags.below_after, "nh")) << flags.below_after;
  EXPECT_FALSE(has_flag(flags.frame_after, "nh")) << "the pages in use are left alone";
  // The 512 KiB a deep call used were resident below the frame, and are dropped.
  EXPECT_GE(flags.rss_below_before, 400);
  EXPECT_LT(flags.rss_below_after, 64) << "what lies below the frame is released";
}

TEST(ThreadStack, StartThreadKeepsItsStackSmall) {
  std::string below;
  std::thread t = start_thread([&] {
    below = vm_flags_at(reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) - (1u << 20));
  });
  t.join();
  EXPECT_TRUE(has_flag(below, "nh")) << below;
}

}  // namespace
}  // namespace forkvm
