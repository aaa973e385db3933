#pragma once

// The one error type of the host <-> agent protocol (contract/protocol/README.md).

#include <stdexcept>
#include <string>
#include <string_view>

namespace forkvm::protocol {

/// What went wrong with a frame or a hello. A peer that sends any of these loses its
/// connection, nothing more.
enum class ProtocolErrorKind {
  BadMagic,         ///< The first 4 bytes of a frame are not kMagic.
  HeaderTooLarge,   ///< header_len > Limits::max_header_len.
  PayloadTooLarge,  ///< payload_len > Limits::max_payload_len.
  EmptyHeader,      ///< header_len == 0.
  BadJson,          ///< The header is not valid UTF-8 JSON (or cannot be serialised).
  NotAnObject,      ///< The header is valid JSON but not an object.
  MissingType,      ///< "type" is absent, not a string, or empty.
  MissingId,        ///< "id" is absent or not a non-negative integer that fits a u64.
  BadHello,         ///< A hello is malformed (wrong type, bad or inverted version fields).
  VersionMismatch,  ///< The two version ranges do not overlap.
};

/// The name of a kind, e.g. "BadMagic", for messages and logs.
[[nodiscard]] std::string_view to_string(ProtocolErrorKind kind) noexcept;

/// A typed protocol error: a kind to branch on and a message with the numbers involved.
class ProtocolError : public std::runtime_error {
 public:
  /// `message` should say what was seen and what was allowed.
  ProtocolError(ProtocolErrorKind kind, const std::string& message);

  /// The kind of failure.
  [[nodiscard]] ProtocolErrorKind kind() const noexcept { return kind_; }

 private:
  ProtocolErrorKind kind_;
};

}  // namespace forkvm::protocol
