#include "base/base64.hpp"

#include <gtest/gtest.h>

#include <random>

namespace forkvm {
namespace {

std::vector<uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> cases[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : cases) {
    EXPECT_EQ(to_base64(bytes(plain)), encoded);
    EXPECT_EQ(from_base64(encoded), bytes(plain)) << encoded;
  }
}

TEST(Base64, RandomRoundTrips) {
  std::mt19937 rng(7);
  for (size_t n = 0; n < 300; ++n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    EXPECT_EQ(from_base64(to_base64(v)), v) << n;
  }
}

TEST(Base64, RejectsWhatOpenSslWouldTolerate) {
  // EVP_DecodeBlock skips leading and trailing whitespace and decodes padding as zero bytes;
  // a snapshot's blob must be exactly the canonical text, so all of these are refused.
  for (const char* bad : {"    Zm9v", "Zm9v    ", "Zm9v\n\n\n\n", "\tZg=", "Zm9vYg==\r\n\r\n",
                          "Zm9vYh==", "Zm9vYmF=", "Zg==Zg=="}) {
    EXPECT_FALSE(from_base64(bad).has_value()) << bad;
  }
  EXPECT_EQ(from_base64("Zm9vYg=="), bytes("foob"));
}

TEST(Base64, RejectsNonCanonicalInput) {
  for (const char* bad : {"Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zm9v====", "Zm=v", "Zm9\n",
                          "Zm9v Zg==", "=Zm9", "Zm9-", "Zm9_"}) {
    EXPECT_FALSE(from_base64(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace forkvm
