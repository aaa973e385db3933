// Reading request fields with the types MESSAGES.md gives them; a missing required field or
// a wrong type throws OpError(invalid_argument) naming the field.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace forkvm::agent {

/// The string field `name`; required.
[[nodiscard]] const std::string& string_field(const nlohmann::json& header, const char* name);
/// The boolean field `name`, or `fallback` when absent (or null).
[[nodiscard]] bool bool_field(const nlohmann::json& header, const char* name, bool fallback);
/// The non-negative integer field `name`, or `fallback` when absent (or null).
[[nodiscard]] std::uint64_t uint_field(const nlohmann::json& header, const char* name,
                                       std::uint64_t fallback);

}  // namespace forkvm::agent
