// Making a forked or restored guest its own machine (MESSAGES.md "identity"): fresh entropy
// mixed into the kernel RNG with an immediate CRNG reseed, the wall clock set from the host,
// and optionally a hostname. Every child of one snapshot starts with the same RNG state and
// the clock of the moment the snapshot was taken; this is what makes them differ.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "contract/protocol/field_rules.hpp"

namespace forkvm::agent {

/// Smallest and largest entropy payload the agent accepts (bytes).
inline constexpr std::size_t kMinIdentityEntropy = 32;
inline constexpr std::size_t kMaxIdentityEntropy = 4096;
/// Longest hostname (HOST_NAME_MAX on Linux).
inline constexpr std::size_t kMaxHostnameBytes = 64;

/// A parsed, validated identity request.
struct IdentityRequest {
  std::string entropy;                        ///< the payload
  std::optional<int64_t> wall_clock_ns;       ///< CLOCK_REALTIME to set, ns since the epoch
  std::optional<std::string> hostname;        ///< [A-Za-z0-9.-], 1..64 bytes
  /// A fork's fresh NIC address: the interface that has `mac_from` gets `mac_to` (unicast).
  std::optional<protocol::MacAddress> mac_from;
  std::optional<protocol::MacAddress> mac_to;
};

/// Parses and validates the request (header fields plus the payload). Throws
/// OpError(invalid_argument) naming the field.
IdentityRequest parse_identity(const nlohmann::json& header, std::string_view payload);

/// Applies it to this machine: RNDADDENTROPY with the payload, RNDRESEEDCRNG so the very next
/// read of /dev/urandom or getrandom() differs, clock_settime(CLOCK_REALTIME), sethostname,
/// and the NIC's new address (interface_mac.hpp).
/// Throws OpError (io / permission_denied) naming the step that failed. Returns the reply's
/// fields.
nlohmann::json apply_identity(const IdentityRequest& request);

}  // namespace forkvm::agent
