#include "guest-init/cpu_list.hpp"

#include <algorithm>

namespace forkvm {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::optional<uint32_t> parse_cpu(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > kMaxCpuId) return std::nullopt;
  return v;
}

}  // namespace

std::optional<std::vector<uint32_t>> parse_cpu_list(std::string_view list) {
  while (!list.empty() && is_space(list.front())) list.remove_prefix(1);
  while (!list.empty() && is_space(list.back())) list.remove_suffix(1);
  std::vector<uint32_t> cpus;
  if (list.empty()) return cpus;
  std::vector<bool> seen(kMaxCpuId + 1, false);
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    const size_t dash = item.find('-');
    const auto first = parse_cpu(item.substr(0, dash));
    const auto last = dash == std::string_view::npos ? first : parse_cpu(item.substr(dash + 1));
    if (!first || !last || *first > *last) return std::nullopt;
    for (uint32_t cpu = *first; cpu <= *last; ++cpu) {
      if (!seen[cpu]) {
        seen[cpu] = true;
        cpus.push_back(cpu);
      }
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  std::sort(cpus.begin(), cpus.end());
  return cpus;
}

std::optional<uint32_t> count_cpu_list(std::string_view list) {
  const auto cpus = parse_cpu_list(list);
  if (!cpus) return std::nullopt;
  return static_cast<uint32_t>(cpus->size());
}

}  // namespace forkvm
