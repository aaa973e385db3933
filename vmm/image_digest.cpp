// VmImage::page_digests: one hash per page of a frozen image's RAM, so that tools can check that
// an image never changes after it was made (issue 11: every child must start from the same
// bytes). Reads the image through a private copy-on-write view, like a child would.
#include "forkvm/vm.hpp"
#include "memory/guest_memory.hpp"
#include "memory/layout.hpp"
#include "vmm/vm_image_impl.hpp"

namespace forkvm {

namespace {
/// FNV-1a over 64-bit words: not cryptographic, only for noticing a changed page.
uint64_t hash_page(const uint8_t* p) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t i = 0; i < layout::kPageSize; i += 8) {
    uint64_t w;
    __builtin_memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  return h;
}
}  // namespace

std::vector<PageDigest> VmImage::page_digests() const {
  const GuestMemory view = GuestMemory::map_image(impl_->memory);
  std::vector<PageDigest> out;
  for (const auto& r : view.regions()) {
    for (uint64_t off = 0; off + layout::kPageSize <= r.size; off += layout::kPageSize) {
      out.push_back({r.gpa + off, hash_page(r.host + off)});
    }
  }
  return out;
}

std::vector<uint64_t> changed_pages(const std::vector<PageDigest>& before,
                                    const std::vector<PageDigest>& after) {
  std::vector<uint64_t> out;
  const size_t n = std::min(before.size(), after.size());
  for (size_t i = 0; i < n; ++i) {
    if (before[i].gpa != after[i].gpa || before[i].hash != after[i].hash) out.push_back(before[i].gpa);
  }
  for (size_t i = n; i < std::max(before.size(), after.size()); ++i) {
    out.push_back(i < before.size() ? before[i].gpa : after[i].gpa);
  }
  return out;
}

}  // namespace forkvm
