#include "devices/virtio/vsock/connect_line.hpp"

#include <cctype>

namespace forkvm::vsock {

std::optional<uint32_t> parse_connect_line(std::string_view line) noexcept {
  constexpr std::string_view kKeyword = "connect ";
  if (line.size() > kMaxConnectLine || line.size() < kKeyword.size() + 2) return std::nullopt;
  if (line.back() != '\n') return std::nullopt;
  for (size_t i = 0; i < kKeyword.size(); ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (std::tolower(c) != kKeyword[i]) return std::nullopt;
  }
  const std::string_view digits = line.substr(kKeyword.size(), line.size() - kKeyword.size() - 1);
  if (digits.empty() || digits.size() > 10) return std::nullopt;
  uint64_t port = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<uint64_t>(c - '0');
  }
  if (port > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(port);
}

std::string format_ok_line(uint32_t local_port) {
  return "OK " + std::to_string(local_port) + "\n";
}

}  // namespace forkvm::vsock
