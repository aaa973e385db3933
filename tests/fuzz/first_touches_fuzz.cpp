// Fuzz target: a stamp-cache entry of a memory file's first touches (vmm/touches_cache.hpp), as
// decode_first_touches reads it for a memory file whose size the input's first byte picks. A set
// it returns must hold what it promises (page-aligned, non-empty, in-bounds ranges, each list
// sorted without overlap, 1..kFirstTouchLessons lessons) and encode back to the same text.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vmm/touched_memory.hpp"
#include "vmm/touches_cache.hpp"

namespace {

void check_list(const std::vector<std::pair<uint64_t, uint64_t>>& list, uint64_t size) {
  uint64_t end = 0;
  for (const auto& [offset, length] : list) {
    if (length == 0 || offset % 4096 != 0 || length % 4096 != 0) __builtin_trap();
    if (offset > size || length > size - offset || offset < end) __builtin_trap();
    end = offset + length;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // 1 MiB .. 256 MiB, so that the seeds' sizes are among them.
  const uint64_t memory_size = (uint64_t{data[0]} + 1) << 20;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::optional<forkvm::KeptTouches> kept = forkvm::decode_first_touches(text, memory_size);
  if (!kept) return 0;
  if (kept->lessons == 0 || kept->lessons > forkvm::kFirstTouchLessons) __builtin_trap();
  check_list(kept->touches.written, memory_size);
  check_list(kept->touches.read, memory_size);
  if (forkvm::encode_first_touches(kept->touches, memory_size, kept->lessons) != text) {
    __builtin_trap();
  }
  return 0;
}
