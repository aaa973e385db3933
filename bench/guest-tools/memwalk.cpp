// forkvm-memwalk: a guest memory-bound workload for `forkvm-bench memory`, built static on the
// host and uploaded into the guest (Busybox and Python are too slow to be bound by memory).
//
//   forkvm-memwalk WORKING_SET_MIB ACCESSES
//
// Maps WORKING_SET_MIB of anonymous memory, touches all of it (untimed: the page faults are not
// what is measured), then times, inside the guest (CLOCK_MONOTONIC):
// - chase: a dependent pointer chase over one 64-byte line per 4 KiB page, the pages in one
//   random cycle, for ACCESSES loads. The lines touched fit in the CPU caches (WS/64 bytes), the
//   pages do not fit in a 4 KiB TLB: each load is a TLB miss and a page walk, which is what huge
//   pages (the guest's, and the host's under nested paging) shorten. ns per access.
// - seq: one sequential read of the whole working set (ns per 4 KiB page).
// Prints one line:
//   memwalk ws_mib=W pages=P accesses=A chase_ns=X seq_ns_per_page=Y guest_thp=T
// where guest_thp is the guest kernel's THP policy ("none" without CONFIG_TRANSPARENT_HUGEPAGE).
// Exit status 2 for bad arguments, 1 when memory cannot be mapped.
#include <sys/mman.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kLine = 64;

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

/// xorshift64*: the random page order (seeded fixed, so every run walks the same cycle).
uint64_t next_random(uint64_t& s) {
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 2685821657736338717ull;
}

bool parse_u64(const char* s, uint64_t lo, uint64_t hi, uint64_t* out) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

void guest_thp(char* out, size_t len) {
  std::snprintf(out, len, "none");
  FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f == nullptr) return;
  char line[128] = {};
  if (std::fgets(line, sizeof line, f) != nullptr) {
    const char* open = std::strchr(line, '[');
    const char* close = open ? std::strchr(open, ']') : nullptr;
    if (open && close) std::snprintf(out, len, "%.*s", static_cast<int>(close - open - 1), open + 1);
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t ws_mib = 0, accesses = 0;
  if (argc != 3 || !parse_u64(argv[1], 1, 65536, &ws_mib) ||
      !parse_u64(argv[2], 1, 1ull << 40, &accesses)) {
    std::fprintf(stderr, "usage: forkvm-memwalk WORKING_SET_MIB(1-65536) ACCESSES\n");
    return 2;
  }
  const uint64_t bytes = ws_mib << 20;
  const uint64_t pages = bytes / kPage;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    return 1;
  }
  auto* base = static_cast<uint8_t*>(p);
  madvise(base, bytes, MADV_HUGEPAGE);  // used where the guest kernel has THP; harmless else
  std::memset(base, 1, bytes);          // every page present before anything is timed

  // A random single cycle over the pages (Sattolo's shuffle), each node on a random line of
  // its page; node i's first word holds the address of the next node.
  auto* order = static_cast<uint32_t*>(std::malloc(pages * sizeof(uint32_t)));
  if (order == nullptr) return 1;
  for (uint64_t i = 0; i < pages; ++i) order[i] = static_cast<uint32_t>(i);
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (uint64_t i = pages - 1; i > 0; --i) {
    const uint64_t j = next_random(seed) % i;
    const uint32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  auto node = [&](uint64_t page) {
    return base + page * kPage + (page * 0x9e37u % (kPage / kLine)) * kLine;
  };
  for (uint64_t i = 0; i < pages; ++i) {
    uint8_t* from = node(order[i]);
    uint8_t* to = node(order[(i + 1) % pages]);
    std::memcpy(from, &to, sizeof to);
  }
  std::free(order);

  // Chase: one lap untimed (caches and TLB in their steady state), then the timed loads.
  uint8_t* cur = node(0);
  for (uint64_t i = 0; i < pages; ++i) std::memcpy(&cur, cur, sizeof cur);
  const uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < accesses; ++i) std::memcpy(&cur, cur, sizeof cur);
  const uint64_t t1 = now_ns();

  // Sequential read of every 8-byte word.
  uint64_t sum = 0;
  const uint64_t t2 = now_ns();
  for (uint64_t off = 0; off < bytes; off += sizeof(uint64_t)) {
    uint64_t v;
    std::memcpy(&v, base + off, sizeof v);
    sum += v;
  }
  const uint64_t t3 = now_ns();

  char thp[32];
  guest_thp(thp, sizeof thp);
  // cur and sum are printed so the compiler keeps both loops.
  std::printf("memwalk ws_mib=%llu pages=%llu accesses=%llu chase_ns=%.3f seq_ns_per_page=%.3f "
              "guest_thp=%s check=%llx\n",
              static_cast<unsigned long long>(ws_mib), static_cast<unsigned long long>(pages),
              static_cast<unsigned long long>(accesses),
              static_cast<double>(t1 - t0) / static_cast<double>(accesses),
              static_cast<double>(t3 - t2) / static_cast<double>(pages), thp,
              static_cast<unsigned long long>(sum ^ reinterpret_cast<uintptr_t>(cur)));
  return 0;
}
