#include "vmm/arch/x86_64/page_tables.hpp"

#include <array>

#include "memory/guest_memory.hpp"
#include "memory/layout.hpp"

namespace forkvm::x86 {
namespace {

using Table = std::array<uint64_t, 512>;  // one 4 KiB page of 8-byte entries
constexpr uint64_t kTwoMiB = 2 * layout::kMiB;

static_assert(sizeof(Table) == layout::kPageSize);
static_assert(layout::kPdCount * 512 * kTwoMiB == layout::kIdentityMapSize);
static_assert(layout::kPdCount <= 512);

}  // namespace

uint64_t write_identity_page_tables(const GuestMemory& mem) {
  Table pml4{};
  pml4[0] = layout::kPdptStart | kPtePresent | kPteWritable;
  mem.write_obj(layout::kPml4Start, pml4);

  Table pdpt{};
  for (uint64_t i = 0; i < layout::kPdCount; ++i) {
    pdpt[i] = (layout::kPdStart + i * layout::kPageSize) | kPtePresent | kPteWritable;
  }
  mem.write_obj(layout::kPdptStart, pdpt);

  for (uint64_t d = 0; d < layout::kPdCount; ++d) {
    Table pd{};
    for (uint64_t i = 0; i < pd.size(); ++i) {
      pd[i] = ((d * pd.size() + i) * kTwoMiB) | kPtePresent | kPteWritable | kPtePageSize;
    }
    mem.write_obj(layout::kPdStart + d * layout::kPageSize, pd);
  }
  return layout::kPml4Start;
}

}  // namespace forkvm::x86
