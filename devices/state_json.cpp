#include "devices/state_json.hpp"

#include "snapshot/base64.hpp"

namespace forkvm::state_json {

void fail(std::string_view component, std::string_view field_name, std::string_view what) {
  std::string msg = "snapshot: " + std::string(component) + ": ";
  if (!field_name.empty()) msg += "field '" + std::string(field_name) + "': ";
  msg += what;
  throw SnapshotError(msg);
}

void expect_object(const nlohmann::json& j, std::string_view component,
                   std::initializer_list<std::string_view> keys) {
  if (!j.is_object()) fail(component, "", "expected an object, got " + std::string(j.type_name()));
  for (const std::string_view k : keys) {
    if (!j.contains(k)) fail(component, k, "missing");
  }
  // Unknown fields mean a state this code does not understand: refuse rather than drop them.
  for (const auto& [k, v] : j.items()) {
    bool known = false;
    for (const std::string_view want : keys) known = known || k == want;
    if (!known) fail(component, k, "unknown field");
  }
}

const nlohmann::json& field(const nlohmann::json& j, std::string_view component,
                            std::string_view key) {
  if (!j.is_object()) fail(component, "", "expected an object, got " + std::string(j.type_name()));
  const auto it = j.find(key);
  if (it == j.end()) fail(component, key, "missing");
  return *it;
}

uint64_t read_uint(const nlohmann::json& j, std::string_view component, std::string_view key,
                   uint64_t max) {
  // number_unsigned only: nlohmann parses a non-negative integer literal as unsigned, and a
  // negative one or a float (even 1.0) as something else, which is refused.
  if (!j.is_number_unsigned()) {
    fail(component, key, "expected an unsigned integer, got " + std::string(j.type_name()) +
                             (j.is_number_integer() ? " (negative)" : ""));
  }
  const uint64_t v = j.get<uint64_t>();
  if (v > max) fail(component, key, std::to_string(v) + " is above " + std::to_string(max));
  return v;
}

bool get_bool(const nlohmann::json& obj, std::string_view component, std::string_view key) {
  const nlohmann::json& j = field(obj, component, key);
  if (!j.is_boolean()) {
    fail(component, key, "expected a boolean, got " + std::string(j.type_name()));
  }
  return j.get<bool>();
}

std::string get_string(const nlohmann::json& obj, std::string_view component,
                       std::string_view key, size_t max_len) {
  const nlohmann::json& j = field(obj, component, key);
  if (!j.is_string()) fail(component, key, "expected a string, got " + std::string(j.type_name()));
  const auto& s = j.get_ref<const std::string&>();
  if (s.size() > max_len) {
    fail(component, key, "string of " + std::to_string(s.size()) + " bytes, at most " +
                             std::to_string(max_len) + " allowed");
  }
  return s;
}

const nlohmann::json& get_array(const nlohmann::json& obj, std::string_view component,
                                std::string_view key, size_t max_len) {
  const nlohmann::json& j = field(obj, component, key);
  if (!j.is_array()) fail(component, key, "expected an array, got " + std::string(j.type_name()));
  if (j.size() > max_len) {
    fail(component, key, std::to_string(j.size()) + " elements, at most " +
                             std::to_string(max_len) + " allowed");
  }
  return j;
}

std::vector<uint8_t> get_blob(const nlohmann::json& obj, std::string_view component,
                              std::string_view key, size_t max_bytes) {
  const size_t max_chars = (max_bytes + 2) / 3 * 4;
  const std::string text = get_string(obj, component, key, max_chars);
  auto bytes = snapshot::from_base64(text);
  if (!bytes) fail(component, key, "not canonical base64");
  if (bytes->size() > max_bytes) {
    fail(component, key, std::to_string(bytes->size()) + " bytes, at most " +
                             std::to_string(max_bytes) + " allowed");
  }
  return std::move(*bytes);
}

nlohmann::json blob(std::span<const uint8_t> bytes) { return snapshot::to_base64(bytes); }

}  // namespace forkvm::state_json
