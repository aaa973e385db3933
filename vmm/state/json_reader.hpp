// JsonReader: strict, typed reads from a JSON object that came from an untrusted snapshot file.
// Every read names the field by its path ("vcpu[0].sregs.cs.type") when it throws SnapshotError;
// finish() rejects keys nobody read, so a misspelt or injected field is an error, not ignored.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "forkvm/errors.hpp"

namespace forkvm::state {

/// Reads the members of one JSON object, checking type, range and presence of each.
class JsonReader {
 public:
  /// `path` names the object in messages; throws SnapshotError unless `j` is an object.
  JsonReader(const nlohmann::json& j, std::string path);

  /// An unsigned or signed integer member within [lo, hi] (defaults: the range of T).
  template <typename T>
  T num(const char* key, T lo = std::numeric_limits<T>::min(),
        T hi = std::numeric_limits<T>::max()) {
    static_assert(std::is_integral_v<T>);
    return static_cast<T>(number(key, static_cast<long double>(lo), static_cast<long double>(hi),
                                 std::is_signed_v<T>));
  }
  /// An integer member that must be 0 or 1 (a KVM boolean byte).
  uint8_t flag(const char* key) { return num<uint8_t>(key, 0, 1); }
  /// A base64 member decoded to between `min` and `max` bytes.
  std::vector<uint8_t> blob(const char* key, size_t min, size_t max);
  /// An array member with at most `max` elements.
  const nlohmann::json& array(const char* key, size_t max);
  /// A nested object member.
  JsonReader object(const char* key);
  /// The raw member (must be present).
  const nlohmann::json& member(const char* key);
  /// Throws SnapshotError if the object has a member none of the calls above read.
  void finish() const;

  /// "path.key", for messages.
  std::string path(const std::string& key) const { return path_ + "." + key; }
  /// Throws SnapshotError for `key` with `what`.
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

 private:
  /// Integers are carried as the exact uint64/int64 nlohmann stores; long double only bounds.
  long double number(const char* key, long double lo, long double hi, bool is_signed);

  const nlohmann::json& j_;
  std::string path_;
  std::set<std::string> read_;
};

/// An integer element of an array at `path` within [lo, hi].
template <typename T>
T json_element(const nlohmann::json& j, const std::string& path,
               T lo = std::numeric_limits<T>::min(), T hi = std::numeric_limits<T>::max()) {
  static_assert(std::is_integral_v<T> && std::is_unsigned_v<T>);
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0)) {
    throw SnapshotError("state: " + path + ": expected an unsigned integer");
  }
  const uint64_t v = j.get<uint64_t>();
  if (v < lo || v > hi) {
    throw SnapshotError("state: " + path + ": value " + std::to_string(v) + " out of range [" +
                        std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return static_cast<T>(v);
}

}  // namespace forkvm::state
