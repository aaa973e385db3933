#include "guest-init/agent/metadata.hpp"

#include <array>
#include <exception>

#include <nlohmann/json.hpp>

#include "guest-init/agent/op_error.hpp"

namespace forkvm::agent {
namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::string response(const nlohmann::json& id, const std::string* error) {
  nlohmann::json out = {{"id", id}, {"ok", error == nullptr}};
  if (error != nullptr) out["error"] = *error;
  // replace: an error text quoting peer bytes can never make the answer unserialisable.
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string answer(const nlohmann::json& request, EnvStore& store) {
  const auto op = request.find("op");
  if (op == request.end() || !op->is_string()) throw OpError("invalid_argument", "no \"op\" string");
  const auto& name = op->get_ref<const std::string&>();
  if (name == "ping") return {};
  if (name == "set_env") {
    const auto env = request.find("env");
    if (env == request.end()) throw OpError("invalid_argument", "set_env needs \"env\"");
    store.set_env(*env);
    return {};
  }
  if (name == "set_secret") {
    const auto secret = request.find("name");
    const auto value = request.find("value_b64");
    if (secret == request.end() || !secret->is_string()) {
      throw OpError("invalid_argument", "set_secret needs a \"name\" string");
    }
    if (value == request.end() || !value->is_string()) {
      throw OpError("invalid_argument", "set_secret needs a \"value_b64\" string");
    }
    const auto bytes = decode_base64(value->get_ref<const std::string&>());
    if (!bytes) throw OpError("invalid_argument", "\"value_b64\" is not valid base64");
    store.set_secret(secret->get_ref<const std::string&>(), *bytes);
    return {};
  }
  throw OpError("unsupported", "unknown op \"" + name.substr(0, 100) + "\"");
}

}  // namespace

std::optional<std::string> decode_base64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    std::array<int, 4> v{};
    int pad = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && last && k >= 2) {
        ++pad;
        v[k] = 0;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[k] = base64_value(c);
      if (v[k] < 0) return std::nullopt;
    }
    const unsigned group = (static_cast<unsigned>(v[0]) << 18) | (static_cast<unsigned>(v[1]) << 12) |
                           (static_cast<unsigned>(v[2]) << 6) | static_cast<unsigned>(v[3]);
    out.push_back(static_cast<char>((group >> 16) & 0xFF));
    if (pad < 2) out.push_back(static_cast<char>((group >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(group & 0xFF));
  }
  return out;
}

std::string handle_metadata_line(std::string_view line, EnvStore& store) noexcept {
  try {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto request = nlohmann::json::parse(line, nullptr, false);
    if (request.is_discarded() || !request.is_object()) {
      const std::string error = "not a JSON object";
      return response(nullptr, &error);
    }
    const nlohmann::json id = request.contains("id") ? request["id"] : nlohmann::json(nullptr);
    try {
      answer(request, store);
      return response(id, nullptr);
    } catch (const std::exception& e) {
      const std::string error = e.what();
      return response(id, &error);
    }
  } catch (...) {
    // Only allocation failure gets here; a fixed answer needs no allocation-heavy work.
    return "{\"id\":null,\"ok\":false,\"error\":\"internal error\"}\n";
  }
}

}  // namespace forkvm::agent
