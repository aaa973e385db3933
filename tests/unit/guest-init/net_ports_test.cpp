// contract/net_ports.hpp: the FORWARD request and OK/ERR answer lines against malformed input.
#include "contract/net_ports.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace forkvm::net {
namespace {

TEST(NetPorts, RequestRoundTripsEveryEdgePort) {
  for (const std::uint16_t port : {std::uint16_t{1}, std::uint16_t{9}, std::uint16_t{10},
                                   std::uint16_t{80}, std::uint16_t{65535}}) {
    const std::string line = encode_forward_request(port);
    ASSERT_EQ(line.back(), '\n');
    EXPECT_EQ(parse_forward_request(std::string_view(line).substr(0, line.size() - 1)), port);
  }
}

TEST(NetPorts, RequestRefusesMalformedLines) {
  for (const std::string& line : std::vector<std::string>{
           "", "FORWARD", "FORWARD ", "FORWARD 0", "FORWARD 00", "FORWARD 080", "FORWARD 65536",
           "FORWARD 99999", "FORWARD 100000", "FORWARD 4294967297", "FORWARD -1", "FORWARD +80",
           "FORWARD  80", "FORWARD 80 ", " FORWARD 80", "FORWARD\t80", "forward 80", "FORWARD80",
           "FORWARD 8O", "FORWARD 0x50", "FORWARD 80\r", "FORWARD 80\n", "CONNECT 80",
           "FORWARD 1 2", std::string("FORWARD 8\0" "0", 11), "FORWARD " + std::string(300, '9')}) {
    EXPECT_FALSE(parse_forward_request(line).has_value()) << '"' << line << '"';
  }
}

TEST(NetPorts, AnswerOkAndErr) {
  ASSERT_EQ(kForwardOkLine, "OK\n");
  const auto ok = parse_forward_answer("OK");
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(ok->ok);
  const auto err = parse_forward_answer("ERR connect 127.0.0.1:80: Connection refused");
  ASSERT_TRUE(err.has_value());
  EXPECT_FALSE(err->ok);
  EXPECT_EQ(err->error, "connect 127.0.0.1:80: Connection refused");
  const auto empty_reason = parse_forward_answer("ERR ");
  ASSERT_TRUE(empty_reason.has_value());
  EXPECT_EQ(empty_reason->error, "");
}

TEST(NetPorts, AnswerRefusesMalformedLines) {
  for (const std::string& line : std::vector<std::string>{
           "", "ok", "OK ", " OK", "OK\n", "OKAY", "ERR", "ERR\tx", "err x", "ERROR x",
           "ERR bad\x01" "byte", "ERR tab\there", "ERR del\x7f", "ERR high\x80", "ERR cr\r",
           "ERR nl\n", std::string("ERR nul\0x", 9)}) {
    EXPECT_FALSE(parse_forward_answer(line).has_value()) << '"' << line << '"';
  }
  // kMaxForwardLineBytes includes the newline: 255 bytes of line are the most.
  const std::string longest = "ERR " + std::string(kMaxForwardLineBytes - 5, 'x');
  EXPECT_TRUE(parse_forward_answer(longest).has_value());
  EXPECT_FALSE(parse_forward_answer(longest + "x").has_value());
}

TEST(NetPorts, EncodedErrorsAlwaysParse) {
  const std::string nasty = std::string("a\nb\rc\0d\x7f\xff\x01 e", 12);
  for (const std::string& reason : {std::string(), std::string("Connection refused"), nasty,
                                    std::string(1000, 'r')}) {
    const std::string line = encode_forward_error(reason);
    ASSERT_LE(line.size(), kMaxForwardLineBytes);
    ASSERT_EQ(line.back(), '\n');
    const auto answer = parse_forward_answer(std::string_view(line).substr(0, line.size() - 1));
    ASSERT_TRUE(answer.has_value()) << line;
    EXPECT_FALSE(answer->ok);
    EXPECT_EQ(answer->error.size(), std::min<std::size_t>(reason.size(), kMaxForwardLineBytes - 5));
  }
  EXPECT_EQ(encode_forward_error(nasty), "ERR a?b?c?d??? e\n");
}

}  // namespace
}  // namespace forkvm::net
