#include "devices/virtio/vsock/connect_line.hpp"

#include <gtest/gtest.h>

namespace forkvm::vsock {
namespace {

TEST(VsockConnectLine, ParsesThePortCaseInsensitively) {
  EXPECT_EQ(parse_connect_line("CONNECT 52\n"), 52u);
  EXPECT_EQ(parse_connect_line("connect 0\n"), 0u);
  EXPECT_EQ(parse_connect_line("CoNnEcT 4294967295\n"), 4294967295u);
}

TEST(VsockConnectLine, RejectsMalformedLines) {
  EXPECT_FALSE(parse_connect_line("CONNECT 52"));        // no newline
  EXPECT_FALSE(parse_connect_line("CONNECT\n"));
  EXPECT_FALSE(parse_connect_line("CONNECT \n"));
  EXPECT_FALSE(parse_connect_line("CONNECT  52\n"));     // two spaces
  EXPECT_FALSE(parse_connect_line("CONNECT -1\n"));
  EXPECT_FALSE(parse_connect_line("CONNECT +1\n"));
  EXPECT_FALSE(parse_connect_line("CONNECT 52\r\n"));
  EXPECT_FALSE(parse_connect_line("CONNECT 52 \n"));
  EXPECT_FALSE(parse_connect_line("CONNECT 4294967296\n"));  // > u32
  EXPECT_FALSE(parse_connect_line("CONNECT 99999999999\n"));
  EXPECT_FALSE(parse_connect_line("CONNECTX52\n"));
  EXPECT_FALSE(parse_connect_line("LISTEN 52\n"));
  EXPECT_FALSE(parse_connect_line(std::string("CONNECT 5\0\n", 11)));
  EXPECT_FALSE(parse_connect_line("CONNECT 00000000001\n"));  // more than 10 digits
  EXPECT_FALSE(parse_connect_line("CONNECT 1" + std::string(30, '0') + "\n"));  // > 32 bytes
}

TEST(VsockConnectLine, FormatsOk) { EXPECT_EQ(format_ok_line(1073741824), "OK 1073741824\n"); }

}  // namespace
}  // namespace forkvm::vsock
