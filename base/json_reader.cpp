#include "base/json_reader.hpp"

#include "base/base64.hpp"

namespace forkvm {

JsonReader::JsonReader(const nlohmann::json& j, std::string path, std::string context)
    : j_(j), path_(std::move(path)), context_(std::move(context)) {
  if (!j_.is_object()) {
    throw SnapshotError(context_ + ": " + (path_.empty() ? "the top level" : path_) +
                        ": expected an object, got " + j_.type_name());
  }
}

void JsonReader::fail(const std::string& key, const std::string& what) const {
  throw SnapshotError(context_ + ": " + path(key) + ": " + what);
}

const nlohmann::json& JsonReader::member(const char* key) {
  const auto it = j_.find(key);
  if (it == j_.end()) fail(key, "missing");
  read_.insert(key);
  return *it;
}

bool JsonReader::present(const char* key) {
  const auto it = j_.find(key);
  read_.insert(key);
  return it != j_.end() && !it->is_null();
}

long double JsonReader::number(const char* key, long double lo, long double hi, bool is_signed) {
  const nlohmann::json& v = member(key);
  // nlohmann keeps integers exactly: parsed text gives uint64 for a non-negative literal and
  // int64 for a negative one (a json built in memory may hold a non-negative int64, which is
  // the same number). Floats, strings, booleans and null are rejected rather than converted.
  if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
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
  if (v.is_number_integer()) fail(key, "expected an unsigned integer, got " + v.dump());
  fail(key, std::string(is_signed ? "expected an integer, got " : "expected an unsigned integer, got ") +
                (v.is_number_float() ? v.dump() : v.type_name()));
}

bool JsonReader::boolean(const char* key) {
  const nlohmann::json& v = member(key);
  if (!v.is_boolean()) fail(key, std::string("expected a boolean, got ") + v.type_name());
  return v.get<bool>();
}

std::string JsonReader::string(const char* key, size_t max_len) {
  const nlohmann::json& v = member(key);
  if (!v.is_string()) fail(key, std::string("expected a string, got ") + v.type_name());
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > max_len) {
    fail(key, "string of " + std::to_string(s.size()) + " bytes, at most " +
                  std::to_string(max_len) + " allowed");
  }
  return s;
}

std::vector<uint8_t> JsonReader::blob(const char* key, size_t min, size_t max) {
  const nlohmann::json& v = member(key);
  if (!v.is_string()) fail(key, std::string("expected a base64 string, got ") + v.type_name());
  const auto& text = v.get_ref<const std::string&>();
  // Base64 is 4 characters per 3 bytes: refuse before decoding anything oversized.
  if (text.size() > (max + 2) / 3 * 4) fail(key, "blob longer than " + std::to_string(max) + " bytes");
  auto bytes = from_base64(text);
  if (!bytes) fail(key, "not canonical base64");
  if (bytes->size() < min || bytes->size() > max) {
    fail(key, "blob is " + std::to_string(bytes->size()) + " bytes, expected " +
                  (min == max ? std::to_string(min)
                              : "between " + std::to_string(min) + " and " + std::to_string(max)));
  }
  return std::move(*bytes);
}

const nlohmann::json& JsonReader::array(const char* key, size_t max) {
  const nlohmann::json& v = member(key);
  if (!v.is_array()) fail(key, std::string("expected an array, got ") + v.type_name());
  if (v.size() > max) {
    fail(key, std::to_string(v.size()) + " elements, at most " + std::to_string(max) + " allowed");
  }
  return v;
}

JsonReader JsonReader::object(const char* key) {
  return JsonReader(member(key), path(key), context_);
}

void JsonReader::finish() const {
  for (const auto& [key, value] : j_.items()) {
    if (!read_.contains(key)) fail(key, "unknown field");
  }
}

nlohmann::json json_blob(std::span<const uint8_t> bytes) { return to_base64(bytes); }

}  // namespace forkvm
