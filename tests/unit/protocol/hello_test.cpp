#include "contract/protocol/hello.hpp"

#include <gtest/gtest.h>

namespace forkvm::protocol {
namespace {

using Kind = ProtocolErrorKind;
using nlohmann::json;

// The kind negotiate() throws, or nullopt if it returned.
std::optional<Kind> negotiate_error(VersionRange local, const json& remote) {
  try {
    (void)negotiate(local, remote);
  } catch (const ProtocolError& e) {
    return e.kind();
  }
  return std::nullopt;
}

json hello(std::uint32_t min, std::uint32_t max) { return make_hello({min, max}).header; }

TEST(Hello, MakeHelloHasTheDocumentedShape) {
  const Frame frame = make_hello();
  EXPECT_EQ(frame.header, json::parse(R"({"type":"hello","id":0,"version":1,"min_version":1})"));
  EXPECT_TRUE(frame.payload.empty());
  EXPECT_NO_THROW((void)encode(frame));
  EXPECT_THROW((void)make_hello({0, 1}), ProtocolError);
  EXPECT_THROW((void)make_hello({3, 2}), ProtocolError);
}

TEST(Hello, RoundTripsThroughTheWire) {
  FrameDecoder decoder;
  decoder.feed(encode(make_hello({2, 5})));
  const auto frame = decoder.next();
  ASSERT_TRUE(frame.has_value());
  const VersionRange range = parse_hello(frame->header);
  EXPECT_EQ(range.min, 2u);
  EXPECT_EQ(range.max, 5u);
}

TEST(Hello, PicksTheHighestCommonVersion) {
  EXPECT_EQ(negotiate({1, 1}, hello(1, 1)), 1u);
  EXPECT_EQ(negotiate({1, 3}, hello(2, 5)), 3u);
  EXPECT_EQ(negotiate({2, 5}, hello(1, 3)), 3u);
  EXPECT_EQ(negotiate({1, 9}, hello(4, 4)), 4u);
  EXPECT_EQ(negotiate({3, 3}, hello(3, 7)), 3u);
  EXPECT_EQ(negotiate({}, make_hello().header), kProtocolVersion);
}

TEST(Hello, NoOverlapIsAVersionMismatchNamingBothRanges) {
  try {
    (void)negotiate({1, 2}, hello(3, 4));
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_EQ(e.kind(), Kind::VersionMismatch);
    EXPECT_NE(std::string(e.what()).find("[1, 2]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[3, 4]"), std::string::npos) << e.what();
  }
  EXPECT_EQ(negotiate_error({5, 6}, hello(1, 4)), Kind::VersionMismatch);
}

TEST(Hello, MalformedHellosAreRejected) {
  const char* cases[] = {
      R"([])",
      R"({"type":"exec","id":0,"version":1,"min_version":1})",
      R"({"id":0,"version":1,"min_version":1})",
      R"({"type":1,"id":0,"version":1,"min_version":1})",
      R"({"type":"hello","id":0,"min_version":1})",
      R"({"type":"hello","id":0,"version":1})",
      R"({"type":"hello","id":0,"version":"1","min_version":1})",
      R"({"type":"hello","id":0,"version":1.0,"min_version":1})",
      R"({"type":"hello","id":0,"version":-1,"min_version":1})",
      R"({"type":"hello","id":0,"version":0,"min_version":0})",
      R"({"type":"hello","id":0,"version":4294967296,"min_version":1})",
      R"({"type":"hello","id":0,"version":1,"min_version":2})",
  };
  for (const char* text : cases) {
    EXPECT_EQ(negotiate_error({1, 1}, json::parse(text)), Kind::BadHello) << text;
  }
  EXPECT_EQ(negotiate_error({2, 1}, hello(1, 1)), Kind::BadHello);  // bad local range
}

}  // namespace
}  // namespace forkvm::protocol
