#include "contract/protocol/protocol_error.hpp"

namespace forkvm::protocol {

std::string_view to_string(ProtocolErrorKind kind) noexcept {
  switch (kind) {
    case ProtocolErrorKind::BadMagic: return "BadMagic";
    case ProtocolErrorKind::HeaderTooLarge: return "HeaderTooLarge";
    case ProtocolErrorKind::PayloadTooLarge: return "PayloadTooLarge";
    case ProtocolErrorKind::EmptyHeader: return "EmptyHeader";
    case ProtocolErrorKind::BadJson: return "BadJson";
    case ProtocolErrorKind::NotAnObject: return "NotAnObject";
    case ProtocolErrorKind::MissingType: return "MissingType";
    case ProtocolErrorKind::MissingId: return "MissingId";
    case ProtocolErrorKind::BadHello: return "BadHello";
    case ProtocolErrorKind::VersionMismatch: return "VersionMismatch";
  }
  return "Unknown";
}

ProtocolError::ProtocolError(ProtocolErrorKind kind, const std::string& message)
    : std::runtime_error("protocol error (" + std::string(to_string(kind)) + "): " + message),
      kind_(kind) {}

}  // namespace forkvm::protocol
