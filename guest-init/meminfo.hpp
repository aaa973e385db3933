// Reading one field of /proc/meminfo ("MemTotal:        1015784 kB").
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace forkvm {

/// The value of `field` (e.g. "MemTotal") in /proc/meminfo text, in KiB. Returns nullopt when
/// the field is missing, its number is malformed or overflows, or its unit is not "kB".
std::optional<uint64_t> meminfo_kib(std::string_view meminfo, std::string_view field);

}  // namespace forkvm
