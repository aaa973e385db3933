#include "guest-init/agent/fields.hpp"

#include "contract/protocol/messages.hpp"
#include "guest-init/agent/op_error.hpp"

namespace forkvm::agent {
namespace {

[[noreturn]] void bad(const char* name, const char* want) {
  throw OpError(protocol::code::kInvalidArgument, std::string("\"") + name + "\" must be " + want);
}

const nlohmann::json* find(const nlohmann::json& header, const char* name) {
  const auto it = header.find(name);
  if (it == header.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

const std::string& string_field(const nlohmann::json& header, const char* name) {
  const nlohmann::json* value = find(header, name);
  if (value == nullptr || !value->is_string()) bad(name, "a string");
  return value->get_ref<const std::string&>();
}

bool bool_field(const nlohmann::json& header, const char* name, bool fallback) {
  const nlohmann::json* value = find(header, name);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) bad(name, "a boolean");
  return value->get<bool>();
}

std::uint64_t uint_field(const nlohmann::json& header, const char* name, std::uint64_t fallback) {
  const nlohmann::json* value = find(header, name);
  if (value == nullptr) return fallback;
  if (value->is_number_unsigned()) return value->get<std::uint64_t>();
  if (value->is_number_integer() && value->get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(value->get<std::int64_t>());
  }
  bad(name, "a non-negative integer");
}

}  // namespace forkvm::agent
