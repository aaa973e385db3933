#include "base/base64.hpp"

#include <openssl/evp.h>

namespace forkvm {
namespace {

// EVP_*Block take an int length; larger texts are refused rather than truncated.
constexpr size_t kMaxText = size_t{1} << 30;

}  // namespace

std::string to_base64(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return {};
  // 4 characters per started group of 3 bytes, plus the NUL EVP_EncodeBlock writes.
  std::string out((bytes.size() + 2) / 3 * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::vector<uint8_t>> from_base64(std::string_view text) {
  if (text.empty()) return std::vector<uint8_t>{};
  if (text.size() % 4 != 0 || text.size() > kMaxText) return std::nullopt;
  std::vector<uint8_t> out(text.size() / 4 * 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  // -1: a character outside the alphabet, or '=' where it cannot be.
  if (n < 0 || static_cast<size_t>(n) != out.size()) return std::nullopt;
  // EVP_DecodeBlock decodes the padding as zero bytes; drop one per '=' at the end.
  const size_t pad = text.ends_with("==") ? 2 : text.ends_with('=') ? 1 : 0;
  out.resize(out.size() - pad);
  // What OpenSSL tolerates and a canonical text does not have (leading or trailing whitespace,
  // non-zero bits under the padding, '=' inside the text): the canonical encoding of the
  // decoded bytes is the text itself, or the text is refused.
  if (to_base64(out) != text) return std::nullopt;
  return out;
}

}  // namespace forkvm
