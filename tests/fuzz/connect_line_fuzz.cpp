// Fuzz target: the CONNECT line a host program sends on the vsock Unix socket
// (devices/virtio/vsock/connect_line.hpp). A line that parses names a port that formats back
// into an OK line; nothing may crash, whatever the bytes.
#include <cstdint>
#include <string>
#include <string_view>

#include "devices/virtio/vsock/connect_line.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  if (const auto port = forkvm::vsock::parse_connect_line(line)) {
    const std::string ok = forkvm::vsock::format_ok_line(*port);
    if (ok.empty() || ok.back() != '\n') __builtin_trap();
  }
  return 0;
}
