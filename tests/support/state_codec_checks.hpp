// Test helper: proves a snapshot-state JSON decoder checks every field of a valid encoding. For
// each top-level field it removes it, and replaces it with values of the wrong JSON type (an
// object, a negative number, a float, null); each must be refused with a SnapshotError whose
// message names the component and the field. An unknown extra field and a non-object are
// refused too.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "forkvm/errors.hpp"

namespace forkvm::test {

/// Runs `decode(j)` and returns the SnapshotError's message, or "" when it did not throw one.
template <class Decode>
std::string snapshot_error_of(Decode&& decode, const nlohmann::json& j) {
  try {
    decode(j);
  } catch (const SnapshotError& e) {
    return e.what();
  }
  return "";
}

/// The checks described above; `good` must decode.
template <class Decode>
void expect_every_field_checked(const nlohmann::json& good, Decode decode,
                                const std::string& component) {
  ASSERT_NO_THROW(decode(good)) << good.dump();
  ASSERT_TRUE(good.is_object());
  for (const auto& [key, value] : good.items()) {
    nlohmann::json missing = good;
    missing.erase(key);
    const std::string m = snapshot_error_of(decode, missing);
    EXPECT_NE(m.find(component), std::string::npos) << key << " missing: " << m;
    EXPECT_NE(m.find(key), std::string::npos) << key << " missing: " << m;
    for (const nlohmann::json& wrong :
         {nlohmann::json::object({{"bogus", 1}}), nlohmann::json(-1), nlohmann::json(1.5),
          nlohmann::json(nullptr)}) {
      nlohmann::json bad = good;
      bad[key] = wrong;
      const std::string w = snapshot_error_of(decode, bad);
      EXPECT_NE(w.find(component), std::string::npos) << key << " = " << wrong.dump() << ": " << w;
      EXPECT_NE(w.find(key), std::string::npos) << key << " = " << wrong.dump() << ": " << w;
    }
  }
  nlohmann::json extra = good;
  extra["surprise"] = 1;
  EXPECT_NE(snapshot_error_of(decode, extra).find("surprise"), std::string::npos);
  EXPECT_NE(snapshot_error_of(decode, nlohmann::json::array()), "");
  EXPECT_NE(snapshot_error_of(decode, nlohmann::json("text")), "");
}

/// `decode(good with j[key] = value)` must throw a SnapshotError naming `key`.
template <class Decode>
void expect_rejected(const nlohmann::json& good, Decode decode, const std::string& key,
                     const nlohmann::json& value) {
  nlohmann::json bad = good;
  bad[key] = value;
  const std::string m = snapshot_error_of(decode, bad);
  EXPECT_NE(m, "") << key << " = " << value.dump() << " was accepted";
  EXPECT_NE(m.find(key), std::string::npos) << key << " = " << value.dump() << ": " << m;
}

}  // namespace forkvm::test
