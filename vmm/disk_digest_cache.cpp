#include "vmm/disk_digest_cache.hpp"

#include <algorithm>

#include "vmm/stamp_cache.hpp"

namespace forkvm {
namespace {

constexpr const char* kDigestKind = "sha256";
constexpr size_t kDigestHexLength = 64;

bool is_digest(const std::string& s) {
  const auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  return s.size() == kDigestHexLength && std::all_of(s.begin(), s.end(), hex);
}

}  // namespace

std::optional<std::string> cached_disk_digest(const FileStamp& stamp) {
  std::optional<std::string> text = read_stamped(kDigestKind, stamp, kDigestHexLength + 1);
  if (!text) return std::nullopt;
  if (!text->empty() && text->back() == '\n') text->pop_back();
  if (!is_digest(*text)) return std::nullopt;
  return text;
}

void keep_disk_digest(const FileStamp& stamp, const std::string& digest,
                      const struct timespec& hash_began) noexcept {
  if (!is_digest(digest)) return;
  try {
    keep_stamped(kDigestKind, stamp, digest + "\n", hash_began);
  } catch (...) {
    // The string's allocation: a cache, so nothing is lost but a later hash.
  }
}

}  // namespace forkvm
