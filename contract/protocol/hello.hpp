#pragma once

// Version negotiation: each side sends a hello as its first frame,
//   {"type":"hello","id":0,"version":<highest supported>,"min_version":<lowest supported>}
// and both then speak the highest version in both ranges (contract/protocol/README.md).

#include "contract/protocol/frame.hpp"

#include <cstdint>

#include <nlohmann/json.hpp>

namespace forkvm::protocol {

/// The protocol version this code speaks.
inline constexpr std::uint32_t kProtocolVersion = 1;

/// An inclusive range of protocol versions, min <= max, min >= 1.
struct VersionRange {
  /// Lowest supported version.
  std::uint32_t min = kProtocolVersion;
  /// Highest supported version.
  std::uint32_t max = kProtocolVersion;
  /// Whether `version` lies in [min, max].
  [[nodiscard]] constexpr bool contains(std::uint32_t version) const noexcept {
    return version >= min && version <= max;
  }
};

/// The hello frame (empty payload) announcing `range`. Throws ProtocolError(BadHello) if the
/// range is empty or starts at 0.
[[nodiscard]] Frame make_hello(VersionRange range = {});

/// Reads the version range from a peer's hello header. Throws ProtocolError(BadHello) unless
/// it is an object with "type":"hello", and "version" and "min_version" integers in
/// [1, 2^32) with min_version <= version.
[[nodiscard]] VersionRange parse_hello(const nlohmann::json& header);

/// The highest version in both `local` and the peer's hello. Throws ProtocolError: BadHello
/// for a malformed hello (see parse_hello) or local range, VersionMismatch (naming both
/// ranges) if they do not overlap.
[[nodiscard]] std::uint32_t negotiate(VersionRange local, const nlohmann::json& remote_hello);

}  // namespace forkvm::protocol
