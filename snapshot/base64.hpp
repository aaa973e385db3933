// Base64 (RFC 4648, standard alphabet, with padding) for the binary blobs inside state.json
// (LAPIC pages, XSAVE areas, ...). Decoding is strict: the input comes from a snapshot file,
// which is untrusted, so anything but canonical base64 of the expected length is an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace forkvm::snapshot {

/// Encodes `bytes` as padded base64.
std::string to_base64(std::span<const uint8_t> bytes);

/// Decodes padded base64; nullopt for a wrong length, a character outside the alphabet,
/// misplaced padding or non-zero padding bits. Never throws on content.
std::optional<std::vector<uint8_t>> from_base64(std::string_view text);

}  // namespace forkvm::snapshot
