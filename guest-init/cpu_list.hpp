// Parsing the kernel's CPU list format ("0-3,5"), as in /sys/devices/system/cpu/online
// (Documentation/admin-guide/cputopology.rst).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace forkvm {

/// Largest CPU number accepted; bounds the work a hostile or corrupt list can cause.
inline constexpr uint32_t kMaxCpuId = 65535;

/// The CPUs named by a list of comma-separated "N" or "N-M" items (N <= M), sorted and without
/// duplicates. Surrounding whitespace and a trailing newline are allowed; an empty list is
/// valid and names no CPU. Returns nullopt on anything malformed or above kMaxCpuId.
std::optional<std::vector<uint32_t>> parse_cpu_list(std::string_view list);

/// The number of CPUs in a list (nullopt when malformed); see parse_cpu_list.
std::optional<uint32_t> count_cpu_list(std::string_view list);

}  // namespace forkvm
