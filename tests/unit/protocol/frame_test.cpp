#include "contract/protocol/frame.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <tuple>

namespace forkvm::protocol {

/// The bytes a decoder holds (consumed and pending alike).
struct FrameDecoderTesting {
  static std::string held(const FrameDecoder& d) {
    return std::string(reinterpret_cast<const char*>(d.buffer_.data()), d.buffer_.size());
  }
};

namespace {

using Kind = ProtocolErrorKind;
using namespace std::string_literals;

// A wire frame built by hand, so the decoder is tested against the format and not just
// against encode().
std::string raw_frame(std::string_view json, std::string_view payload,
                      std::string_view magic = "FKVM") {
  std::string out(magic);
  auto put = [&out](std::uint64_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  put(json.size());
  put(payload.size());
  out += json;
  out += payload;
  return out;
}

// Only the 12-byte fixed header, with arbitrary lengths.
std::string fixed_header(std::uint32_t header_len, std::uint32_t payload_len) {
  std::string out("FKVM");
  for (std::uint32_t v : {header_len, payload_len}) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
  return out;
}

Frame make(std::string type, std::uint64_t id, std::string payload = {}) {
  return Frame{{{"type", std::move(type)}, {"id", id}}, std::move(payload)};
}

// Feeds `bytes` and returns the error kind thrown by feed() or next(), or nullopt.
std::optional<Kind> decode_error(std::string_view bytes, Limits limits = {}) {
  FrameDecoder decoder(limits);
  try {
    decoder.feed(bytes);
    while (decoder.next()) {
    }
  } catch (const ProtocolError& e) {
    EXPECT_TRUE(decoder.poisoned());
    return e.kind();
  }
  return std::nullopt;
}

std::vector<Frame> decode_all(FrameDecoder& decoder) {
  std::vector<Frame> out;
  while (auto frame = decoder.next()) out.push_back(std::move(*frame));
  return out;
}

TEST(Frame, WireLayoutIsFixedHeaderThenJsonThenPayload) {
  const std::string wire = encode(make("exec", 7, std::string("\0ab", 3)));
  const std::string json = R"({"id":7,"type":"exec"})";
  EXPECT_EQ(wire, raw_frame(json, std::string("\0ab", 3)));
  EXPECT_EQ(wire.substr(0, 4), "FKVM");
  EXPECT_EQ(static_cast<unsigned char>(wire[4]), json.size());  // little-endian
  EXPECT_EQ(wire[5], '\0');
  EXPECT_EQ(static_cast<unsigned char>(wire[8]), 3u);
}

TEST(Frame, RoundTripEmptyPayload) {
  FrameDecoder decoder;
  decoder.feed(encode(make("ping", 1)));
  auto frame = decoder.next();
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(frame->header["type"], "ping");
  EXPECT_EQ(frame->header["id"].get<std::uint64_t>(), 1u);
  EXPECT_TRUE(frame->payload.empty());
  EXPECT_FALSE(decoder.next().has_value());
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(Frame, RoundTripBinaryPayloadWithEveryByteValue) {
  std::string payload;
  for (int round = 0; round < 3; ++round) {
    for (int b = 0; b < 256; ++b) payload.push_back(static_cast<char>(b));
  }
  Frame in = make("stdout", UINT64_MAX, payload);
  in.header["extra"] = {{"nested", {1, 2, 3}}, {"text", "h\u00e9llo"}};
  FrameDecoder decoder;
  decoder.feed(encode(in));
  auto out = decoder.next();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->header, in.header);
  EXPECT_EQ(out->header["id"].get<std::uint64_t>(), UINT64_MAX);
  EXPECT_EQ(out->payload, payload);
}

TEST(Frame, RoundTripPayloadAtTheLimit) {
  const Limits limits;
  const std::string payload(limits.max_payload_len, '\xAB');
  FrameDecoder decoder;
  decoder.feed(encode(make("data", 2, payload)));
  auto out = decoder.next();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->payload, payload);
}

TEST(Frame, HeaderAtTheLimitIsAcceptedAndOneMoreIsNot) {
  Limits limits;
  limits.max_header_len = 64;
  Frame frame = make("t", 1);
  const std::size_t base = frame.header.dump().size() + std::string(R"(,"p":"")").size();
  frame.header["p"] = std::string(64 - base, 'x');
  ASSERT_EQ(frame.header.dump().size(), 64u);
  FrameDecoder decoder(limits);
  decoder.feed(encode(frame, limits));
  EXPECT_TRUE(decoder.next().has_value());
  frame.header["p"] = std::string(65 - base, 'x');
  try {
    (void)encode(frame, limits);
    FAIL() << "encode accepted a 65-byte header";
  } catch (const ProtocolError& e) {
    EXPECT_EQ(e.kind(), Kind::HeaderTooLarge);
  }
  const std::string json = frame.header.dump();
  EXPECT_EQ(decode_error(raw_frame(json, ""), limits), Kind::HeaderTooLarge);
}

TEST(Frame, ManyFramesInOneBuffer) {
  std::string stream;
  for (std::uint64_t i = 0; i < 100; ++i) stream += encode(make("n", i, std::string(i, 'p')));
  FrameDecoder decoder;
  decoder.feed(stream);
  const auto frames = decode_all(decoder);
  ASSERT_EQ(frames.size(), 100u);
  for (std::uint64_t i = 0; i < 100; ++i) {
    EXPECT_EQ(frames[i].header["id"].get<std::uint64_t>(), i);
    EXPECT_EQ(frames[i].payload.size(), i);
  }
}

TEST(Frame, ByteAtATime) {
  const std::string stream = encode(make("a", 1, "xyz")) + encode(make("b", 2));
  FrameDecoder decoder;
  std::vector<Frame> frames;
  for (char c : stream) {
    decoder.feed(std::string_view(&c, 1));
    while (auto f = decoder.next()) frames.push_back(std::move(*f));
  }
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].header["type"], "a");
  EXPECT_EQ(frames[0].payload, "xyz");
  EXPECT_EQ(frames[1].header["type"], "b");
}

TEST(Frame, SplitAtEveryOffsetOfATwoFrameStream) {
  const std::string stream =
      encode(make("first", 10, std::string("\0\xff\n", 3))) + encode(make("second", 11, "zz"));
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    FrameDecoder decoder;
    decoder.feed(std::string_view(stream).substr(0, cut));
    auto frames = decode_all(decoder);
    decoder.feed(std::string_view(stream).substr(cut));
    for (auto& f : decode_all(decoder)) frames.push_back(std::move(f));
    ASSERT_EQ(frames.size(), 2u) << "cut at " << cut;
    EXPECT_EQ(frames[0].header["id"].get<std::uint64_t>(), 10u);
    EXPECT_EQ(frames[0].payload, std::string("\0\xff\n", 3));
    EXPECT_EQ(frames[1].header["id"].get<std::uint64_t>(), 11u);
    EXPECT_EQ(frames[1].payload, "zz");
    EXPECT_EQ(decoder.buffered(), 0u);
  }
}

TEST(Frame, TruncatedFrameIsNotAnErrorUntilMoreArrives) {
  const std::string wire = encode(make("x", 1, "payload"));
  for (std::size_t len = 0; len < wire.size(); ++len) {
    FrameDecoder decoder;
    decoder.feed(std::string_view(wire).substr(0, len));
    EXPECT_FALSE(decoder.next().has_value()) << len;
    EXPECT_FALSE(decoder.poisoned());
  }
}

TEST(Frame, OversizedLengthsAreRejectedFromTheFixedHeaderAlone) {
  const Limits limits;
  for (auto [h, p, kind] : {std::tuple{limits.max_header_len + 1, 0u, Kind::HeaderTooLarge},
                            std::tuple{0xFFFFFFFFu, 0u, Kind::HeaderTooLarge},
                            std::tuple{10u, limits.max_payload_len + 1, Kind::PayloadTooLarge},
                            std::tuple{10u, 0xFFFFFFFFu, Kind::PayloadTooLarge}}) {
    FrameDecoder decoder;
    try {
      decoder.feed(fixed_header(h, p));  // rejected by feed(), no data needed
      FAIL() << "accepted header_len " << h << " payload_len " << p;
    } catch (const ProtocolError& e) {
      EXPECT_EQ(e.kind(), kind);
    }
    EXPECT_EQ(decoder.buffered(), 0u);  // nothing kept
  }
}

TEST(Frame, ZeroHeaderLengthIsRejected) {
  EXPECT_EQ(decode_error(fixed_header(0, 0)), Kind::EmptyHeader);
  EXPECT_EQ(decode_error(fixed_header(0, 5) + "hello"), Kind::EmptyHeader);
}

TEST(Frame, BadMagicIsRejectedFromTheFirstWrongByte) {
  EXPECT_EQ(decode_error(raw_frame(R"({"type":"a","id":1})", "", "FKVN")), Kind::BadMagic);
  EXPECT_EQ(decode_error("X"), Kind::BadMagic);
  EXPECT_EQ(decode_error("FK\0"s), Kind::BadMagic);
  EXPECT_EQ(decode_error("GET / HTTP/1.1\r\n"), Kind::BadMagic);
  EXPECT_EQ(decode_error("FKV"), std::nullopt);  // a correct prefix waits for more
}

TEST(Frame, InvalidHeadersAreRejected) {
  const std::pair<std::string, Kind> cases[] = {
      {R"({"type":"a","id":1)", Kind::BadJson},
      {"not json", Kind::BadJson},
      {R"({"type":"a","id":1} trailing)", Kind::BadJson},
      {"{\"type\":\"\xff\",\"id\":1}", Kind::BadJson},  // invalid UTF-8
      {"{\"type\":\"a\",\0\"id\":1}"s, Kind::BadJson},
      {R"([{"type":"a","id":1}])", Kind::NotAnObject},
      {R"("hello")", Kind::NotAnObject},
      {"null", Kind::NotAnObject},
      {R"({"id":1})", Kind::MissingType},
      {R"({"type":5,"id":1})", Kind::MissingType},
      {R"({"type":null,"id":1})", Kind::MissingType},
      {R"({"type":"","id":1})", Kind::MissingType},
      {R"({"type":"a"})", Kind::MissingId},
      {R"({"type":"a","id":-1})", Kind::MissingId},
      {R"({"type":"a","id":1.5})", Kind::MissingId},
      {R"({"type":"a","id":"1"})", Kind::MissingId},
      {R"({"type":"a","id":18446744073709551616})", Kind::MissingId},  // 2^64 parses as float
  };
  for (const auto& [json, kind] : cases) {
    EXPECT_EQ(decode_error(raw_frame(json, "")), kind) << json;
  }
}

TEST(Frame, DeeplyNestedJsonDoesNotCrash) {
  const std::string json = std::string(30000, '[') + std::string(30000, ']');
  EXPECT_EQ(decode_error(raw_frame(json, "")), Kind::NotAnObject);
  const std::string open = "{\"type\":\"a\",\"id\":1,\"x\":" + std::string(30000, '[');
  EXPECT_EQ(decode_error(raw_frame(open, "")), Kind::BadJson);
}

TEST(Frame, PoisonedDecoderRethrowsTheSameError) {
  FrameDecoder decoder;
  decoder.feed(encode(make("ok", 1)));
  decoder.feed(raw_frame("[]", ""));
  decoder.feed(encode(make("after", 2)));
  ASSERT_TRUE(decoder.next().has_value());  // frames before the bad one are still delivered
  std::string first;
  try {
    (void)decoder.next();
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_EQ(e.kind(), Kind::NotAnObject);
    first = e.what();
  }
  EXPECT_TRUE(decoder.poisoned());
  for (int i = 0; i < 2; ++i) {
    try {
      (void)decoder.next();
      FAIL();
    } catch (const ProtocolError& e) {
      EXPECT_EQ(e.kind(), Kind::NotAnObject);
      EXPECT_EQ(e.what(), first);
    }
    try {
      decoder.feed(encode(make("more", 3)));
      FAIL();
    } catch (const ProtocolError& e) {
      EXPECT_EQ(e.kind(), Kind::NotAnObject);
    }
  }
}

TEST(Frame, EncodeRejectsBadFrames) {
  const Limits limits;
  const std::pair<Frame, Kind> cases[] = {
      {Frame{nlohmann::json::array({1, 2}), {}}, Kind::NotAnObject},
      {Frame{nlohmann::json(), {}}, Kind::NotAnObject},
      {Frame{{{"id", 1}}, {}}, Kind::MissingType},
      {Frame{{{"type", 1}, {"id", 1}}, {}}, Kind::MissingType},
      {Frame{{{"type", "a"}}, {}}, Kind::MissingId},
      {Frame{{{"type", "a"}, {"id", -1}}, {}}, Kind::MissingId},
      {Frame{{{"type", "a"}, {"id", 1.0}}, {}}, Kind::MissingId},
      {Frame{{{"type", "a"}, {"id", 1}, {"s", "\xff"}}, {}}, Kind::BadJson},
      {make("a", 1, std::string(limits.max_payload_len + 1, 'x')), Kind::PayloadTooLarge},
      {Frame{{{"type", "a"}, {"id", 1}, {"s", std::string(limits.max_header_len, 'x')}}, {}},
       Kind::HeaderTooLarge},
  };
  for (const auto& [frame, kind] : cases) {
    try {
      (void)encode(frame, limits);
      ADD_FAILURE() << "encoded " << to_string(kind) << " case";
    } catch (const ProtocolError& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
    }
  }
  // A signed but non-negative id (json{{"id", 7}}) is fine.
  EXPECT_NO_THROW((void)encode(Frame{{{"type", "a"}, {"id", 7}}, {}}));
}

TEST(Frame, ConfigurableLimits) {
  Limits limits;
  limits.max_payload_len = 4;
  EXPECT_NO_THROW((void)encode(make("a", 1, "1234"), limits));
  EXPECT_THROW((void)encode(make("a", 1, "12345"), limits), ProtocolError);
  EXPECT_EQ(decode_error(encode(make("a", 1, "12345")), limits), Kind::PayloadTooLarge);
  EXPECT_EQ(decode_error(encode(make("a", 1, "1234")), limits), std::nullopt);
}

}  // namespace
}  // namespace forkvm::protocol

namespace forkvm::protocol {
namespace {

TEST(Frame, TheDecoderKeepsNoCopyOfAFrameItReturned) {
  // A secret frame, then half of the next one: the decoder keeps the pending half only.
  const std::string secret = "s3cr3t-value-0123456789";
  const std::string first = raw_frame(R"({"type":"set_secret","id":1})", secret);
  const std::string second = raw_frame(R"({"type":"ping","id":2})", "pong-payload");
  const std::string half = second.substr(0, second.size() / 2);
  FrameDecoder d;
  d.feed(first + half);
  const auto f = d.next();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->payload, secret);
  EXPECT_FALSE(d.next().has_value());
  EXPECT_EQ(FrameDecoderTesting::held(d).find(secret), std::string::npos);
  EXPECT_NE(FrameDecoderTesting::held(d).find(half), std::string::npos);  // still pending
  // The rest arrives (the consumed bytes are reclaimed first); then a frame big enough to
  // make the buffer grow.
  d.feed(second.substr(half.size()));
  EXPECT_EQ(FrameDecoderTesting::held(d).find(secret), std::string::npos);
  ASSERT_TRUE(d.next().has_value());
  const std::string big = raw_frame(R"({"type":"write","id":3})", std::string(200000, 'x') + secret);
  d.feed(big);
  const auto g = d.next();
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(FrameDecoderTesting::held(d).find(secret), std::string::npos);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(Frame, APoisonedDecoderHoldsNothing) {
  FrameDecoder d;
  const std::string secret = "another-secret-987";
  // A good frame, then a secret frame whose header is broken: poisoned with the secret
  // pending.
  d.feed(raw_frame(R"({"type":"ping","id":1})", "") + raw_frame(R"({"type":1,"id":2})", secret));
  ASSERT_TRUE(d.next().has_value());
  EXPECT_NE(FrameDecoderTesting::held(d).find(secret), std::string::npos);
  EXPECT_THROW((void)d.next(), ProtocolError);
  EXPECT_TRUE(d.poisoned());
  EXPECT_TRUE(FrameDecoderTesting::held(d).empty());
}

}  // namespace
}  // namespace forkvm::protocol
