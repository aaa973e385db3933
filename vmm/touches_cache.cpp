#include "vmm/touches_cache.hpp"

#include <charconv>
#include <utility>
#include <vector>

#include "memory/layout.hpp"
#include "vmm/stamp_cache.hpp"
#include "vmm/touched_memory.hpp"

namespace forkvm {
namespace {

constexpr const char* kTouchesKind = "touches";
constexpr std::string_view kHeader = "forkvm-first-touches 1";

/// Splits off the next line of `text` (without its '\n'); false at the end or when the last
/// line has no '\n' (a truncated entry).
bool next_line(std::string_view& text, std::string_view& line) {
  const size_t nl = text.find('\n');
  if (nl == std::string_view::npos) return false;
  line = text.substr(0, nl);
  text.remove_prefix(nl + 1);
  return true;
}

/// A whole decimal number: digits only, no sign, no leading zero but for 0 itself.
bool parse_number(std::string_view s, uint64_t& out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

/// "<key> <number>" exactly.
bool parse_field(std::string_view line, std::string_view key, uint64_t& out) {
  if (line.size() <= key.size() + 1 || line.substr(0, key.size()) != key ||
      line[key.size()] != ' ') {
    return false;
  }
  return parse_number(line.substr(key.size() + 1), out);
}

/// One "<kind> <offset> <length>" range line, checked against the memory file.
bool parse_range(std::string_view line, char& kind, uint64_t& offset, uint64_t& length,
                 uint64_t memory_size) {
  if (line.size() < 5 || (line[0] != 'w' && line[0] != 'r') || line[1] != ' ') return false;
  kind = line[0];
  line.remove_prefix(2);
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return false;
  if (!parse_number(line.substr(0, sp), offset) || !parse_number(line.substr(sp + 1), length)) {
    return false;
  }
  return length > 0 && offset % layout::kPageSize == 0 && length % layout::kPageSize == 0 &&
         offset <= memory_size && length <= memory_size - offset;
}

}  // namespace

std::string encode_first_touches(const TouchedMemory& touches, uint64_t memory_size,
                                 unsigned lessons) {
  std::string out(kHeader);
  out += "\nmemory " + std::to_string(memory_size) + "\nlessons " + std::to_string(lessons) + "\n";
  for (const auto& [offset, length] : touches.written) {
    out += "w " + std::to_string(offset) + " " + std::to_string(length) + "\n";
  }
  for (const auto& [offset, length] : touches.read) {
    out += "r " + std::to_string(offset) + " " + std::to_string(length) + "\n";
  }
  return out;
}

std::optional<KeptTouches> decode_first_touches(std::string_view text, uint64_t memory_size) {
  std::string_view line;
  uint64_t size = 0, lessons = 0;
  if (!next_line(text, line) || line != kHeader) return std::nullopt;
  if (!next_line(text, line) || !parse_field(line, "memory", size) || size != memory_size) {
    return std::nullopt;
  }
  if (!next_line(text, line) || !parse_field(line, "lessons", lessons) || lessons == 0 ||
      lessons > kFirstTouchLessons) {
    return std::nullopt;
  }
  KeptTouches out;
  out.lessons = static_cast<unsigned>(lessons);
  uint64_t written_end = 0, read_end = 0;  // where each list's last range ended
  size_t ranges = 0;
  while (!text.empty()) {
    char kind = 0;
    uint64_t offset = 0, length = 0;
    if (!next_line(text, line) || !parse_range(line, kind, offset, length, memory_size) ||
        ++ranges > kMaxKeptTouchRanges) {
      return std::nullopt;
    }
    // Written ranges first, then read ones; each list sorted without overlap.
    auto& list = kind == 'w' ? out.touches.written : out.touches.read;
    uint64_t& end = kind == 'w' ? written_end : read_end;
    if ((kind == 'w' && !out.touches.read.empty()) || (!list.empty() && offset < end)) {
      return std::nullopt;
    }
    list.emplace_back(offset, length);
    end = offset + length;
  }
  return out;
}

std::optional<KeptTouches> cached_first_touches(const FileStamp& stamp, uint64_t memory_size) {
  const std::optional<std::string> text = read_stamped(kTouchesKind, stamp, kMaxKeptTouchBytes);
  if (!text) return std::nullopt;
  return decode_first_touches(*text, memory_size);
}

void keep_first_touches(const FileStamp& stamp, const TouchedMemory& touches,
                        uint64_t memory_size, unsigned lessons,
                        const struct timespec& read_began) noexcept {
  try {
    const std::string text = encode_first_touches(touches, memory_size, lessons);
    if (text.size() > kMaxKeptTouchBytes ||
        touches.written.size() + touches.read.size() > kMaxKeptTouchRanges) {
      return;  // would not be read back
    }
    keep_stamped(kTouchesKind, stamp, text, read_began);
  } catch (...) {
    // A cache: the next process learns the pages again.
  }
}

}  // namespace forkvm
