// JsonReader: the one strict reader for JSON that came from an untrusted file (a snapshot's
// state.json and every component state inside it). Each read checks the JSON type exactly (an
// unsigned integer is never a float, a bool or a negative number), the range or length the
// field allows, and presence; finish() rejects keys nobody read, so a misspelt or injected field
// is an error, not ignored. Every failure is a forkvm::SnapshotError naming the field by its
// path: "<context>: <path>.<key>: <what>", e.g. "snapshot: vcpu[0].sregs.cs.type: ...".
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "forkvm/errors.hpp"

namespace forkvm {

/// Reads the members of one JSON object, checking type, range and presence of each.
class JsonReader {
 public:
  /// `path` names the object in messages ("" for a top-level object); `context` starts every
  /// message (the file, or "snapshot"). Throws SnapshotError unless `j` is an object.
  JsonReader(const nlohmann::json& j, std::string path, std::string context = "snapshot");

  /// An unsigned or signed integer member within [lo, hi] (defaults: the range of T).
  template <typename T>
  T num(const char* key, T lo = std::numeric_limits<T>::min(),
        T hi = std::numeric_limits<T>::max()) {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
    return static_cast<T>(number(key, static_cast<long double>(lo), static_cast<long double>(hi),
                                 std::is_signed_v<T>));
  }
  /// An integer member that must be 0 or 1 (a KVM boolean byte).
  uint8_t flag(const char* key) { return num<uint8_t>(key, 0, 1); }
  /// A JSON boolean member (true/false, never 0/1).
  bool boolean(const char* key);
  /// A string member of at most `max_len` bytes.
  std::string string(const char* key, size_t max_len);
  /// A base64 member (base/base64.hpp) decoded to between `min` and `max` bytes. The text's
  /// length is checked before decoding, so an oversized blob costs no allocation.
  std::vector<uint8_t> blob(const char* key, size_t min, size_t max);
  /// An array member with at most `max` elements.
  const nlohmann::json& array(const char* key, size_t max);
  /// A nested object member, read by its own reader (path "<path>.<key>").
  JsonReader object(const char* key);
  /// For an optional member: true when it is present and not null (then read it with the calls
  /// above); a null or absent member counts as read.
  bool present(const char* key);
  /// The raw member (must be present), for a decoder of its own.
  const nlohmann::json& member(const char* key);
  /// Throws SnapshotError if the object has a member none of the calls above read.
  void finish() const;

  /// "path.key" (or "key" at the top level), for messages and nested readers.
  std::string path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  /// The context messages start with.
  const std::string& context() const noexcept { return context_; }
  /// Throws SnapshotError for `key` with `what`.
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

 private:
  /// Integers are carried as the exact uint64/int64 nlohmann stores; long double only bounds.
  long double number(const char* key, long double lo, long double hi, bool is_signed);

  const nlohmann::json& j_;
  std::string path_;
  std::string context_;
  std::set<std::string> read_;
};

/// An unsigned integer element of an array, named `path` in messages, within [lo, hi].
template <typename T>
T json_element(const nlohmann::json& j, const std::string& path,
               T lo = std::numeric_limits<T>::min(), T hi = std::numeric_limits<T>::max(),
               const std::string& context = "snapshot") {
  static_assert(std::is_integral_v<T> && std::is_unsigned_v<T>);
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0)) {
    throw SnapshotError(context + ": " + path + ": expected an unsigned integer, got " +
                        (j.is_number_integer() ? "a negative number" : j.type_name()));
  }
  const uint64_t v = j.get<uint64_t>();
  if (v < lo || v > hi) {
    throw SnapshotError(context + ": " + path + ": value " + std::to_string(v) +
                        " out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return static_cast<T>(v);
}

/// Encodes bytes as the base64 string JsonReader::blob() reads.
nlohmann::json json_blob(std::span<const uint8_t> bytes);

}  // namespace forkvm
