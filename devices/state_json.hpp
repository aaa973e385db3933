// Strict readers for the per-device state inside a snapshot's state.json. A snapshot file is
// untrusted input, so every reader checks the JSON type exactly (an unsigned integer is never a
// float, a bool or a negative number), the range the field allows, and that an object carries
// exactly the fields expected: a missing or an unknown field is an error. Every failure is a
// forkvm::SnapshotError naming the component and the field ("snapshot: serial: field 'ier': ...").
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "forkvm/errors.hpp"

namespace forkvm::state_json {

/// Throws SnapshotError "snapshot: <component>: field '<field>': <what>" (or without the field
/// part when `field` is empty).
[[noreturn]] void fail(std::string_view component, std::string_view field, std::string_view what);

/// Requires `j` to be an object holding exactly the fields in `keys`.
void expect_object(const nlohmann::json& j, std::string_view component,
                   std::initializer_list<std::string_view> keys);

/// `j[key]`, which must exist (expect_object has checked that).
const nlohmann::json& field(const nlohmann::json& j, std::string_view component,
                            std::string_view key);

/// Reads an unsigned integer in [0, max] from `j` (field `key` of `component`, for the message).
uint64_t read_uint(const nlohmann::json& j, std::string_view component, std::string_view key,
                   uint64_t max);

/// read_uint() of field `key` of object `obj`, as type T (max defaults to T's maximum).
template <class T>
T get_uint(const nlohmann::json& obj, std::string_view component, std::string_view key,
           uint64_t max = std::numeric_limits<T>::max()) {
  static_assert(std::is_unsigned_v<T>);
  return static_cast<T>(read_uint(field(obj, component, key), component, key, max));
}

/// A JSON boolean (not 0/1).
bool get_bool(const nlohmann::json& obj, std::string_view component, std::string_view key);

/// A JSON string of at most `max_len` bytes.
std::string get_string(const nlohmann::json& obj, std::string_view component,
                       std::string_view key, size_t max_len);

/// A JSON array of at most `max_len` elements.
const nlohmann::json& get_array(const nlohmann::json& obj, std::string_view component,
                                std::string_view key, size_t max_len);

/// A binary blob stored as padded base64 (snapshot/base64.hpp) of at most `max_bytes` bytes.
/// The string length is checked before decoding, so an oversized blob costs no allocation.
std::vector<uint8_t> get_blob(const nlohmann::json& obj, std::string_view component,
                              std::string_view key, size_t max_bytes);

/// Encodes bytes for get_blob().
nlohmann::json blob(std::span<const uint8_t> bytes);

}  // namespace forkvm::state_json
