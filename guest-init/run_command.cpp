#include "guest-init/run_command.hpp"

#include <cstdint>
#include <optional>

namespace forkvm {
namespace {

std::optional<uint8_t> hex_digit(char c) {
  if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return static_cast<uint8_t>(c - 'A' + 10);
  return std::nullopt;
}

}  // namespace

std::string decode_run_command(std::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    char c = encoded[i];
    if (c == '%') {
      const bool room = i + 2 < encoded.size();
      const auto hi = room ? hex_digit(encoded[i + 1]) : std::nullopt;
      const auto lo = room ? hex_digit(encoded[i + 2]) : std::nullopt;
      if (!hi || !lo) {
        throw AgentConfigError("forkvm.run: '%' at offset " + std::to_string(i) +
                               " is not followed by two hex digits");
      }
      c = static_cast<char>((*hi << 4) | *lo);
      i += 2;
    }
    if (c == '\0') {
      throw AgentConfigError("forkvm.run: the command contains a NUL byte (offset " +
                             std::to_string(i) + ")");
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace forkvm
