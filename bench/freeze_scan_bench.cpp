#include "bench/freeze_scan_bench.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/stats.hpp"
#include "memory/guest_memory.hpp"
#include "memory/layout.hpp"
#include "memory/memory_image.hpp"
#include "memory/written_pages.hpp"

namespace forkvm::bench {

const char* const kFreezeScanUsage =
    "usage: forkvm-bench freeze-scan [-n N] [--written PAGES]\n"
    "  the pagemap scan of a fork's freeze (GuestMemory::private_extents) on 256 MiB, 1 GiB and\n"
    "  4 GiB of copy-on-write RAM, with every page read since the mapping (a long-running guest)\n"
    "  and with none (a fresh fork), PAGES (default 1280: 5 MiB) written; then the whole freeze\n"
    "  (scan, copy into a layer, re-map). No KVM.\n";

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

/// Copy-on-write RAM of `mib` MiB as a fork has it: a booted VM's memfd, every page written
/// once (so the base holds data), frozen; this RAM now maps it MAP_PRIVATE.
GuestMemory forked_ram(uint64_t mib) {
  GuestMemory ram = GuestMemory::create_memfd(mib << 20);
  for (const auto& r : ram.regions()) {
    for (uint64_t off = 0; off < r.size; off += layout::kPageSize) r.host[off] = 1;
  }
  (void)ram.freeze();
  return ram;
}

/// Reads one byte of every page (present, still shared with the image).
void read_all(const GuestMemory& ram) {
  volatile uint8_t sink = 0;
  for (const auto& r : ram.regions()) {
    for (uint64_t off = 0; off < r.size; off += layout::kPageSize) sink = sink + r.host[off];
  }
}

/// Writes `pages` pages at random (each becomes this RAM's private copy), as a guest does: behind
/// GuestMemory's write log. With `dirty`, records them as KVM's dirty log would (one bitmap per
/// region).
void write_random(const GuestMemory& ram, uint64_t pages, std::mt19937_64& rng,
                  PageBitmaps* dirty = nullptr) {
  const auto& regions = ram.regions();
  for (uint64_t i = 0; i < pages; ++i) {
    const size_t region = rng() % regions.size();
    const auto& r = regions[region];
    const uint64_t page = rng() % (r.size / layout::kPageSize);
    r.host[page * layout::kPageSize] = 2;
    if (dirty != nullptr) (*dirty)[region][page / 64] |= uint64_t{1} << (page % 64);
  }
}

struct Row {
  std::string label;
  std::vector<double> samples;
};

}  // namespace

int freeze_scan_bench(std::span<char* const> args) {
  unsigned n = 10;
  uint64_t written = 1280;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string a = args[i];
    const bool has_value = i + 1 < args.size();
    char* end = nullptr;
    if ((a == "-n" || a == "--written") && has_value) {
      const unsigned long long v = std::strtoull(args[++i], &end, 10);
      if (*end != '\0' || v == 0 || v > 1000000) {
        std::fprintf(stderr, "forkvm-bench freeze-scan: %s wants a count from 1 to 1000000\n", a.c_str());
        return 2;
      }
      if (a == "-n") {
        n = static_cast<unsigned>(v);
      } else {
        written = v;
      }
    } else {
      std::fprintf(stderr, "%s", kFreezeScanUsage);
      return 2;
    }
  }
  std::mt19937_64 rng(1);
  std::vector<Row> rows;
  try {
    for (const uint64_t mib : {256ull, 1024ull, 4096ull}) {
      std::fprintf(stderr, "  %llu MiB: filling and freezing the base\n", static_cast<unsigned long long>(mib));
      GuestMemory ram = forked_ram(mib);
      const std::string size = std::to_string(mib) + " MiB";
      Row fresh{"scan, " + size + ", none read", {}};
      Row touched{"scan, " + size + ", all read", {}};
      Row copy{"scan + copy into a layer, " + size, {}};
      Row freeze{"freeze, " + size + ", all read", {}};
      Row logged{"freeze from the logs, " + size + ", all read", {}};
      uint64_t copied = 0;  // bytes the freezes copied into their layers (gaps included)
      uint64_t mapped = 0;  // extents those layers have (one mapping each)
      for (unsigned i = 0; i < n; ++i) {
        // A fresh fork: only the written pages are mapped.
        GuestMemory fork = GuestMemory::map_image(ram.image());
        write_random(fork, written, rng);
        auto t0 = Clock::now();
        (void)fork.private_extents();
        fresh.samples.push_back(ms_since(t0));
        // A long-running one: it has read every page since it was mapped.
        read_all(fork);
        t0 = Clock::now();
        const size_t extents = fork.private_extents().size();
        touched.samples.push_back(ms_since(t0));
        if (extents == 0) throw std::runtime_error("the scan found no written page");
        // The copy alone: what freeze() puts into its new layer (read back from this RAM).
        const auto& regions = fork.regions();
        const MemoryImage::ReadFn read = [&regions](uint64_t offset, uint8_t* dst, uint64_t len) {
          for (const auto& r : regions) {
            if (offset >= r.file_offset && offset + len <= r.file_offset + r.size) {
              std::memcpy(dst, r.host + (offset - r.file_offset), len);
              return;
            }
          }
          throw std::runtime_error("an extent crosses regions");  // not with these sizes' layout
        };
        t0 = Clock::now();
        (void)fork.image()->with_layer(fork.private_extents(), read);
        copy.samples.push_back(ms_since(t0));
        t0 = Clock::now();
        const auto frozen = fork.freeze();
        freeze.samples.push_back(ms_since(t0));
        if (!frozen->layers().empty()) {
          copied += frozen->layers().back()->bytes;
          mapped += frozen->layers().back()->extents.size();
        }
        // The same with the logs a VM made from an image keeps: the guest's writes in a dirty
        // bitmap (KVM_GET_DIRTY_LOG's part, a copy of one bit per page, is not in this time),
        // the VMM's in the write log (empty here).
        GuestMemory logged_fork = GuestMemory::map_image(ram.image());
        logged_fork.start_write_log();
        PageBitmaps dirty;
        for (const auto& r : logged_fork.regions()) dirty.emplace_back(bitmap_words(r.size));
        write_random(logged_fork, written, rng, &dirty);
        read_all(logged_fork);
        t0 = Clock::now();
        (void)logged_fork.freeze(&dirty);
        logged.samples.push_back(ms_since(t0));
      }
      freeze.label += " (copies " + std::to_string(copied / n / 1024) + " KiB in " +
                      std::to_string(mapped / n) + " extents)";
      rows.push_back(std::move(fresh));
      rows.push_back(std::move(touched));
      rows.push_back(std::move(copy));
      rows.push_back(std::move(freeze));
      rows.push_back(std::move(logged));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench freeze-scan: %s\n", e.what());
    return 1;
  }
  std::printf("freeze-scan: %llu pages written (%.1f MiB) since the mapping, %u rounds; times in ms\n",
              static_cast<unsigned long long>(written), static_cast<double>(written) * 4096 / (1 << 20), n);
  for (const Row& r : rows) std::printf("  %s\n", format_row(r.label, summarize(r.samples)).c_str());
  std::printf("  (scan = GuestMemory::private_extents(): the /proc/self/pagemap read of Vm::freeze; it\n"
              "   reads 8 bytes per page of RAM and the kernel walks every page-table entry present,\n"
              "   so it grows with the RAM the guest has touched, not with the pages written;\n"
              "   copy = MemoryImage::with_layer: a sealed memfd with the written pages, gaps of up to\n"
              "   64 KiB between them included; freeze = scan + copy + re-mapping the layer's extents,\n"
              "   one mmap each; the writes are random pages, the worst case for extents;\n"
              "   freeze from the logs = the same freeze of a VM made from an image, whose pages come\n"
              "   from KVM's dirty log and the write log instead of the scan (the KVM_GET_DIRTY_LOG\n"
              "   ioctl, about one bit per page copied out, is not in it: this bench has no KVM))\n");
  return 0;
}

}  // namespace forkvm::bench
