// kvm tier: copy-free fork of guest RAM on a real /dev/kvm. The counting guest of
// counting_machine.hpp runs; GuestMemory::freeze() turns its RAM into a MemoryImage and re-maps
// it copy-on-write over that image at the same host addresses (so the VM's memory slot stays
// valid and KVM must follow the new pages); children map the image (GuestMemory::map_image),
// get the captured vCPU/VM state and continue from the same count. Checked for both freezable
// starting points (anonymous RAM and a shared memfd) and for forks of forks six deep, where
// every level's image gets one more overlay layer holding only the pages that level wrote.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "memory/guest_memory.hpp"
#include "memory/memory_image.hpp"
#include "tests/kvm/counting_machine.hpp"
#include "tests/support/file_stat.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/state/machine_state.hpp"
#include "vmm/state/msr_list.hpp"

namespace forkvm::test {
namespace {

constexpr uint64_t kMemSize = kCountingMemSize;
// What a freeze of anonymous RAM may copy: the pages the guest touched (code, GDT, page tables,
// the counter) sit in two places, and anonymous RAM starts 2 MiB-aligned, so where the host's
// transparent huge pages are on (`enabled` always) each place is one 2 MiB page: 4 MiB, an
// eighth of the RAM; the other 28 MiB must not be copied.
constexpr uint64_t kTouchedBound = 4ull << 20;
constexpr uint64_t kCounter = kCountingCounter;
constexpr uint64_t kPage = 4096;
/// A page every level overwrites with its own number (host writes into its RAM).
constexpr uint64_t kSharedPage = 0x300000;
/// Level j writes a marker into a page of its own, 1 MiB apart (far beyond kCoalesceGap).
constexpr uint64_t marker_page(size_t level) { return 0x400000 + level * 0x100000; }
constexpr uint64_t marker_value(size_t level) { return 0xfeed0000 + level; }

using Backing = GuestMemory::Backing;

GuestMemory make_memory(Backing backing) {
  return backing == Backing::kSharedFile ? GuestMemory::create_memfd(kMemSize)
                                         : GuestMemory::create_anonymous(kMemSize);
}

bool covers(const std::vector<MemoryImage::Extent>& extents, uint64_t offset) {
  for (const auto& e : extents) {
    if (offset >= e.offset && offset - e.offset < e.length) return true;
  }
  return false;
}

/// Bytes allocated in all of an image's layer files.
uint64_t layer_allocated_bytes(const MemoryImage& image) {
  uint64_t sum = 0;
  for (const auto& l : image.layers()) sum += allocated_bytes(l->fd.get());
  return sum;
}

uint64_t read_image(const std::shared_ptr<const MemoryImage>& image, uint64_t offset) {
  return GuestMemory::map_image(image).read_obj<uint64_t>(offset);
}

class KvmMemoryFork : public ::testing::TestWithParam<Backing> {
 protected:
  KvmSystem kvm = KvmSystem::open();
  std::vector<uint32_t> msrs = state::msrs_to_save(kvm.msr_index_list());
};

// One parent, frozen once, keeps counting on its re-mapped RAM; ten children of the image each
// continue from the frozen count and never see each other's or the parent's writes.
TEST_P(KvmMemoryFork, ParentKeepsCountingAndTenChildrenContinueApart) {
  auto parent_owner = std::make_unique<Machine>(kvm, make_memory(GetParam()));
  Machine& parent = *parent_owner;
  parent.boot(kvm, 1000);
  ASSERT_EQ(parent.run_counts(5), counts_after(1000, 5));
  ASSERT_EQ(parent.counter(), 1005u);

  uint8_t* const host_before = parent.memory.regions()[0].host;
  const int shared_fd = parent.memory.backing_fd();
  struct stat memfd_before {};
  if (GetParam() == Backing::kSharedFile) memfd_before = stat_of(shared_fd);

  // The vCPU is outside KVM_RUN with its last OUT completed: capture, then freeze.
  const state::MachineState snap = parent.capture(msrs);
  const std::shared_ptr<const MemoryImage> image = parent.memory.freeze();
  ASSERT_TRUE(image);

  // The parent's RAM is now a copy-on-write view of the image, at the same host address.
  EXPECT_EQ(parent.memory.regions()[0].host, host_before)
      << "freeze() moved the RAM: the VM's memory slot would point at a stale mapping";
  EXPECT_EQ(parent.memory.backing(), Backing::kPrivateFile);
  EXPECT_EQ(parent.memory.image(), image);
  EXPECT_EQ(image->size(), kMemSize);
  if (GetParam() == Backing::kSharedFile) {
    EXPECT_TRUE(image->layers().empty()) << "the first freeze of a memfd makes a base, no layer";
    EXPECT_EQ(image->overlay_bytes(), 0u);
    EXPECT_EQ(image->extent_count(), 0u);
  } else {
    // Anonymous RAM: the touched pages go into a new memfd (a base, or one layer over an
    // all-zero base as implemented).
    EXPECT_LE(image->layers().size(), 1u);
    EXPECT_LE(image->overlay_bytes(), kTouchedBound);
  }
  const struct stat base = stat_of(image->base_fd());
  EXPECT_EQ(static_cast<uint64_t>(base.st_size), kMemSize);
  if (GetParam() == Backing::kSharedFile) {
    // Nothing copied: the memfd the VM ran on is the base.
    EXPECT_EQ(base.st_ino, memfd_before.st_ino) << "a shared memfd's freeze must not copy it";
    EXPECT_EQ(base.st_dev, memfd_before.st_dev);
  } else {
    // Only the touched pages (code, GDT, page tables, the counter) were copied.
    EXPECT_LE(allocated_bytes(image->base_fd()) + layer_allocated_bytes(*image), kTouchedBound)
        << "the anonymous RAM's untouched pages were copied too";
  }
  EXPECT_EQ(read_image(image, kCounter), 1005u);
  EXPECT_TRUE(parent.memory.private_extents().empty())
      << "a freshly frozen RAM has written nothing since it was re-mapped";

  // The parent keeps counting: KVM follows the new mapping (the host view sees the guest's
  // writes), and those writes are private to the parent.
  ASSERT_EQ(parent.run_counts(3), counts_after(1005, 3));
  EXPECT_EQ(parent.counter(), 1008u) << "the guest's writes do not reach the re-mapped RAM: KVM "
                                        "kept translations to the pre-freeze pages";
  EXPECT_TRUE(covers(parent.memory.private_extents(), kCounter))
      << "the parent's counter page should be its private copy after it wrote it";
  EXPECT_EQ(read_image(image, kCounter), 1005u) << "the parent's write reached the image";

  std::vector<std::unique_ptr<Machine>> children;
  for (int i = 0; i < 10; ++i) {
    auto child = std::make_unique<Machine>(kvm, GuestMemory::map_image(image));
    EXPECT_EQ(child->memory.backing(), Backing::kPrivateFile);
    EXPECT_EQ(child->memory.image(), image);
    EXPECT_TRUE(child->memory.private_extents().empty()) << "child " << i;
    child->restore(snap);
    children.push_back(std::move(child));
  }
  // The parent runs on after the children exist; they must not see it.
  ASSERT_EQ(parent.run_counts(2), counts_after(1008, 2));
  EXPECT_EQ(parent.counter(), 1010u);

  for (int i = 0; i < 10; ++i) {
    SCOPED_TRACE("child " + std::to_string(i));
    Machine& c = *children[static_cast<size_t>(i)];
    EXPECT_EQ(c.counter(), 1005u) << "the frozen value, not the parent's 1010";
    // Each child counts a different distance from the same point, with the frozen registers.
    EXPECT_EQ(c.run_counts(i + 1), counts_after(1005, i + 1));
    EXPECT_EQ(c.counter(), static_cast<uint64_t>(1006 + i));
    EXPECT_TRUE(covers(c.memory.private_extents(), kCounter));
  }
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(children[static_cast<size_t>(i)]->counter(), static_cast<uint64_t>(1006 + i))
        << "child " << i << " saw a sibling's write";
  }
  EXPECT_EQ(parent.counter(), 1010u) << "a child's write reached the parent";
  EXPECT_EQ(read_image(image, kCounter), 1005u) << "a child's write reached the image";
  if (GetParam() == Backing::kSharedFile) {
    // The memfd the parent ran on is the base: nothing written since the freeze reaches it.
    uint64_t in_base = 0;
    ASSERT_EQ(pread(image->base_fd(), &in_base, sizeof in_base, kCounter),
              static_cast<ssize_t>(sizeof in_base));
    EXPECT_EQ(in_base, 1005u) << "the base file changed after the freeze";
  }

  // Host writes into one child's RAM stay private too.
  children[3]->memory.write_obj<uint64_t>(kCounter, 77);
  EXPECT_EQ(children[3]->counter(), 77u);
  EXPECT_EQ(children[4]->counter(), 1010u);
  EXPECT_EQ(parent.counter(), 1010u);
  EXPECT_EQ(read_image(image, kCounter), 1005u);
  // Children keep running after the parent is gone (the image keeps its files alive).
  parent_owner.reset();
  EXPECT_EQ(children[9]->run_counts(2), counts_after(1015, 2));
}

// Forks of forks: each level freezes the VM that was itself started from the previous level's
// image. Its image is the previous one plus one overlay layer holding only the pages that level
// wrote; past MemoryImage::kMaxLayers the layers are merged into one. Every level sees what all
// its ancestors wrote before they forked, and nothing its descendants or (after the fork) its
// parent wrote.
TEST_P(KvmMemoryFork, ForkOfAForkSixDeepAddsOneSmallLayerPerLevel) {
  constexpr size_t kLevels = 7;  // machine 0 (booted) and six forks, each of the previous one
  std::vector<std::unique_ptr<Machine>> machines;
  std::vector<std::shared_ptr<const MemoryImage>> images;  // images[k]: freeze of machine k
  std::vector<uint64_t> frozen_count;                      // the count in images[k]

  machines.push_back(std::make_unique<Machine>(kvm, make_memory(GetParam())));
  machines[0]->boot(kvm, 0);
  ASSERT_EQ(machines[0]->run_counts(3), counts_after(0, 3));

  for (size_t k = 0; k < kLevels; ++k) {
    SCOPED_TRACE("level " + std::to_string(k));
    Machine& m = *machines[k];
    // What this level leaves to its descendants.
    m.memory.write_obj<uint64_t>(marker_page(k), marker_value(k));
    m.memory.write_obj<uint64_t>(kSharedPage, k);
    const uint64_t count = m.counter();
    const state::MachineState snap = m.capture(msrs);
    const uint8_t* host_before = m.memory.regions()[0].host;

    images.push_back(m.memory.freeze());
    frozen_count.push_back(count);
    const MemoryImage& img = *images[k];
    EXPECT_EQ(m.memory.regions()[0].host, host_before);
    EXPECT_EQ(m.memory.image(), images[k]);

    // Layers: 0 for the booted VM's freeze, one more per level, merged into one past the cap.
    if (k == 0) {
      // A memfd becomes the base; anonymous RAM a new memfd (base, or a layer over a zero base).
      EXPECT_LE(img.layers().size(), GetParam() == Backing::kSharedFile ? 0u : 1u);
    } else {
      const auto& below = images[k - 1]->layers();
      const size_t before = below.size();
      const bool merged = before + 1 > MemoryImage::kMaxLayers;
      EXPECT_EQ(img.layers().size(), merged ? 1 : before + 1)
          << "the previous image had " << before << " layers (kMaxLayers "
          << MemoryImage::kMaxLayers << ")";
      if (!merged && img.layers().size() == before + 1) {
        for (size_t j = 0; j < before; ++j) {
          EXPECT_EQ(img.layers()[j], below[j]) << "layer " << j << " below was copied, not shared";
        }
      }
      EXPECT_EQ(stat_of(img.base_fd()).st_ino, stat_of(images[0]->base_fd()).st_ino)
          << "the base is shared by every level, never copied";
      // Only written pages were copied: the new layer holds the counter, the shared page and
      // this level's marker (a merged one all levels' pages), never the whole RAM. (Anonymous
      // RAM's first image holds whole transparent huge pages where the host used them, so
      // the total is bounded more loosely than the new layer.)
      std::fprintf(stderr, "[memory_fork] level %zu: %zu layers, %zu extents, %llu KiB overlay\n",
                   k, img.layers().size(), img.extent_count(),
                   static_cast<unsigned long long>(img.overlay_bytes() >> 10));
      EXPECT_GT(img.overlay_bytes(), 0u);
      if (!merged) {
        EXPECT_LT(img.layers().back()->bytes, 1u << 20)
            << "the new layer copied far more than this level wrote";
      }
      EXPECT_LT(img.overlay_bytes(), kMemSize / 4) << "the freeze copied far more than was written";
      EXPECT_LT(layer_allocated_bytes(img), kMemSize / 4) << "the layer files are not sparse";
      uint64_t sum = 0;
      size_t extents = 0;
      std::vector<MemoryImage::Extent> all;
      for (const auto& layer_ptr : img.layers()) {
        const MemoryImage::Layer& layer = *layer_ptr;
        EXPECT_EQ(static_cast<uint64_t>(stat_of(layer.fd.get()).st_size), kMemSize)
            << "a layer is a memfd of the full RAM size";
        uint64_t bytes = 0;
        for (const auto& e : layer.extents) {
          EXPECT_EQ(e.offset % kPage, 0u);
          EXPECT_EQ(e.length % kPage, 0u);
          EXPECT_GT(e.length, 0u);
          EXPECT_LE(e.offset + e.length, kMemSize);
          bytes += e.length;
          all.push_back(e);
        }
        EXPECT_EQ(layer.bytes, bytes);
        sum += layer.bytes;
        extents += layer.extents.size();
      }
      EXPECT_EQ(img.overlay_bytes(), sum);
      EXPECT_EQ(img.extent_count(), extents);
      EXPECT_TRUE(covers(all, kCounter));
      EXPECT_TRUE(covers(all, kSharedPage));
      EXPECT_TRUE(covers(all, marker_page(k)));
      EXPECT_FALSE(covers(all, marker_page(kLevels + 1))) << "an unwritten page is in a layer";
    }

    // The parent keeps running after the freeze, from its own state.
    ASSERT_EQ(m.run_counts(2), counts_after(count, 2));
    if (k + 1 == kLevels) break;

    // The next level starts from the image; the parent writes after the fork stay its own.
    auto child = std::make_unique<Machine>(kvm, GuestMemory::map_image(images[k]));
    child->restore(snap);
    m.memory.write_obj<uint64_t>(kSharedPage, 1000 + k);
    m.memory.write_obj<uint64_t>(marker_page(k + 1), 0xbad);
    EXPECT_EQ(child->counter(), count) << "the child does not start from the frozen count";
    EXPECT_EQ(child->memory.read_obj<uint64_t>(kSharedPage), k)
        << "the parent's write after the fork reached the child";
    EXPECT_EQ(child->memory.read_obj<uint64_t>(marker_page(k + 1)), 0u)
        << "the parent's write after the fork reached the child";
    ASSERT_EQ(child->run_counts(static_cast<int>(k) + 1), counts_after(count, static_cast<int>(k) + 1));
    machines.push_back(std::move(child));
  }

  // Every image still reads as it was frozen, whatever was merged or written since.
  for (size_t k = 0; k < images.size(); ++k) {
    SCOPED_TRACE("image " + std::to_string(k));
    const GuestMemory view = GuestMemory::map_image(images[k]);
    EXPECT_EQ(view.read_obj<uint64_t>(kCounter), frozen_count[k]);
    EXPECT_EQ(view.read_obj<uint64_t>(kSharedPage), k);
    for (size_t j = 0; j < kLevels; ++j) {
      EXPECT_EQ(view.read_obj<uint64_t>(marker_page(j)), j <= k ? marker_value(j) : 0u)
          << "marker of level " << j;
    }
    std::vector<uint8_t> code(kCountingGuest.size());
    view.read(kCountingCode, code);
    EXPECT_EQ(code, kCountingGuest);
  }
  // And every machine still sees its own writes after the fork, none of its child's.
  for (size_t k = 0; k + 1 < machines.size(); ++k) {
    EXPECT_EQ(machines[k]->memory.read_obj<uint64_t>(kSharedPage), 1000 + k) << "machine " << k;
    EXPECT_EQ(machines[k]->memory.read_obj<uint64_t>(marker_page(k + 1)), 0xbadu) << "machine " << k;
  }
  EXPECT_EQ(machines.back()->memory.read_obj<uint64_t>(kSharedPage), kLevels - 1);
}

INSTANTIATE_TEST_SUITE_P(Backings, KvmMemoryFork,
                         ::testing::Values(Backing::kAnonymous, Backing::kSharedFile),
                         [](const ::testing::TestParamInfo<Backing>& param) {
                           return param.param == Backing::kSharedFile ? std::string("Memfd")
                                                                     : std::string("Anonymous");
                         });

}  // namespace
}  // namespace forkvm::test
