// SHA-256 through OpenSSL's EVP interface, fed incrementally so that a memory file of any size
// is hashed in bounded space.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace forkvm::snapshot {

/// An incremental SHA-256 (FIPS 180-4). Throws SnapshotError if OpenSSL fails, which only
/// happens when it cannot allocate.
class Sha256 {
 public:
  Sha256();
  /// Hashes `bytes` after everything fed so far.
  void update(std::span<const uint8_t> bytes);
  /// Hashes the characters of `text`.
  void update(std::string_view text);
  /// The digest of everything fed, as 64 lowercase hex digits. Call once.
  std::string final_hex();

  /// The digest of `bytes` in one call.
  static std::string of(std::span<const uint8_t> bytes);
  /// The digest of the characters of `text` in one call.
  static std::string of(std::string_view text);

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const noexcept;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

/// True when `text` is exactly 64 lowercase hex digits (the form final_hex() produces).
bool is_sha256_hex(std::string_view text) noexcept;

}  // namespace forkvm::snapshot
