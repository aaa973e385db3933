// Port 5555: the newline-delimited JSON metadata protocol (MESSAGES.md "Port 5555"), one
// request line in, one response line out, on the same EnvStore as the framed protocol.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "guest-init/agent/env_store.hpp"

namespace forkvm::agent {

/// Answers one request line (without its '\n'): {"id":ID,"ok":true} or
/// {"id":ID,"ok":false,"error":"..."}, newline-terminated. Never throws for any input.
[[nodiscard]] std::string handle_metadata_line(std::string_view line, EnvStore& store) noexcept;

/// Decodes standard base64 (RFC 4648 §4, '=' padding required for partial groups, no
/// whitespace); nullopt if `text` is not exactly that.
[[nodiscard]] std::optional<std::string> decode_base64(std::string_view text);

}  // namespace forkvm::agent
