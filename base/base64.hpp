// Base64 (RFC 4648, standard alphabet, with padding) for the binary blobs inside state.json
// (LAPIC pages, XSAVE areas, device FIFOs). The coding is OpenSSL's (EVP_EncodeBlock and
// EVP_DecodeBlock); decoding adds the strictness OpenSSL leaves out, because the input comes
// from a snapshot file, which is untrusted: anything but canonical base64 is an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace forkvm {

/// Encodes `bytes` as padded base64.
std::string to_base64(std::span<const uint8_t> bytes);

/// Decodes padded base64; nullopt for a wrong length, a character outside the alphabet
/// (whitespace included), misplaced padding, non-zero padding bits, or more than 1 GiB of text.
/// Never throws on content.
std::optional<std::vector<uint8_t>> from_base64(std::string_view text);

}  // namespace forkvm
