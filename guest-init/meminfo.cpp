#include "guest-init/meminfo.hpp"

namespace forkvm {
namespace {

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

std::optional<uint64_t> parse_kib(std::string_view rest) {
  rest = trim_left(rest);
  uint64_t value = 0;
  size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
    const auto d = static_cast<uint64_t>(rest[digits] - '0');
    if (value > (UINT64_MAX - d) / 10) return std::nullopt;
    value = value * 10 + d;
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  const std::string_view unit = trim_left(rest.substr(digits));
  if (unit != "kB") return std::nullopt;
  return value;
}

}  // namespace

std::optional<uint64_t> meminfo_kib(std::string_view meminfo, std::string_view field) {
  while (!meminfo.empty()) {
    const size_t eol = meminfo.find('\n');
    std::string_view line = meminfo.substr(0, eol);
    meminfo = eol == std::string_view::npos ? std::string_view() : meminfo.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || line.substr(0, colon) != field) continue;
    return parse_kib(line.substr(colon + 1));
  }
  return std::nullopt;
}

}  // namespace forkvm
