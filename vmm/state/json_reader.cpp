#include "vmm/state/json_reader.hpp"

#include "snapshot/base64.hpp"

namespace forkvm::state {

JsonReader::JsonReader(const nlohmann::json& j, std::string path)
    : j_(j), path_(std::move(path)) {
  if (!j_.is_object()) throw SnapshotError("state: " + path_ + ": expected an object");
}

void JsonReader::fail(const std::string& key, const std::string& what) const {
  throw SnapshotError("state: " + path(key) + ": " + what);
}

const nlohmann::json& JsonReader::member(const char* key) {
  const auto it = j_.find(key);
  if (it == j_.end()) fail(key, "missing");
  read_.insert(key);
  return *it;
}

long double JsonReader::number(const char* key, long double lo, long double hi, bool is_signed) {
  const nlohmann::json& v = member(key);
  // nlohmann keeps integers exactly as uint64 (non-negative) or int64 (negative); floats,
  // strings, booleans and null are rejected rather than converted.
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (static_cast<long double>(u) > hi) {
      fail(key, "value " + std::to_string(u) + " is above the maximum " +
                    std::to_string(static_cast<uint64_t>(hi)));
    }
    if (static_cast<long double>(u) < lo) {
      fail(key, "value " + std::to_string(u) + " is below the minimum " +
                    std::to_string(static_cast<int64_t>(lo)));
    }
    return static_cast<long double>(u);
  }
  if (v.is_number_integer() && is_signed) {
    const int64_t s = v.get<int64_t>();
    if (static_cast<long double>(s) < lo || static_cast<long double>(s) > hi) {
      fail(key, "value " + std::to_string(s) + " out of range");
    }
    return static_cast<long double>(s);
  }
  fail(key, is_signed ? "expected an integer" : "expected an unsigned integer");
}

std::vector<uint8_t> JsonReader::blob(const char* key, size_t min, size_t max) {
  const nlohmann::json& v = member(key);
  if (!v.is_string()) fail(key, "expected a base64 string");
  const auto& text = v.get_ref<const std::string&>();
  // Base64 is 4 characters per 3 bytes: refuse before decoding anything oversized.
  if (text.size() / 4 * 3 > max + 2) fail(key, "blob longer than " + std::to_string(max) + " bytes");
  auto bytes = snapshot::from_base64(text);
  if (!bytes) fail(key, "not valid base64");
  if (bytes->size() < min || bytes->size() > max) {
    fail(key, "blob is " + std::to_string(bytes->size()) + " bytes, expected " +
                  (min == max ? std::to_string(min)
                              : "between " + std::to_string(min) + " and " + std::to_string(max)));
  }
  return std::move(*bytes);
}

const nlohmann::json& JsonReader::array(const char* key, size_t max) {
  const nlohmann::json& v = member(key);
  if (!v.is_array()) fail(key, "expected an array");
  if (v.size() > max) {
    fail(key, std::to_string(v.size()) + " elements, at most " + std::to_string(max) + " allowed");
  }
  return v;
}

JsonReader JsonReader::object(const char* key) { return JsonReader(member(key), path(key)); }

void JsonReader::finish() const {
  for (const auto& [key, value] : j_.items()) {
    if (!read_.contains(key)) fail(key, "unknown field");
  }
}

}  // namespace forkvm::state
