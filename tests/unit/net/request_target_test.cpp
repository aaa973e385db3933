// The proxy's request targets (net/request_target.hpp) and the header blocks it writes
// (net/http_rewrite.hpp), against malformed input from the guest.
#include <gtest/gtest.h>

#include <string>

#include "net/http_rewrite.hpp"
#include "net/request_target.hpp"

namespace forkvm::net {
namespace {

ProxyTarget ok(const std::variant<ProxyTarget, TargetError>& parsed) {
  if (const auto* error = std::get_if<TargetError>(&parsed)) {
    ADD_FAILURE() << error->what;
    return {};
  }
  return std::get<ProxyTarget>(parsed);
}

bool refused(const std::variant<ProxyTarget, TargetError>& parsed) {
  return std::holds_alternative<TargetError>(parsed);
}

TEST(ConnectTarget, SplitsHostAndPort) {
  auto t = ok(parse_connect_target("pypi.org:443"));
  EXPECT_EQ(t.host, "pypi.org");
  EXPECT_EQ(t.port, 443);
  EXPECT_EQ(t.path, "");
  t = ok(parse_connect_target("[2001:db8::1]:8443"));
  EXPECT_EQ(t.host, "2001:db8::1");
  EXPECT_EQ(t.port, 8443);
}

TEST(ConnectTarget, RefusesEverythingElse) {
  for (const char* bad :
       {"", "pypi.org", "pypi.org:", ":443", "pypi.org:0", "pypi.org:65536", "pypi.org:+443",
        "pypi.org:44 3", "pypi.org:443/x", "http://pypi.org:443", "2001:db8::1:443",
        "[2001:db8::1:443", "[2001:db8::1]x:443", "user@pypi.org:443", "pypi.org:123456",
        "pyp\x01i.org:443", "pypi.org:443\r\n"}) {
    EXPECT_TRUE(refused(parse_connect_target(bad))) << bad;
  }
  EXPECT_TRUE(refused(parse_connect_target(std::string(9000, 'a') + ":443")));
}

TEST(AbsoluteTarget, SplitsTheUri) {
  auto t = ok(parse_absolute_target("http://example.com/a/b?c=d"));
  EXPECT_EQ(t.host, "example.com");
  EXPECT_EQ(t.port, 80);
  EXPECT_EQ(t.path, "/a/b?c=d");
  t = ok(parse_absolute_target("HTTP://Example.com:8080"));
  EXPECT_EQ(t.host, "Example.com");  // normalize_host lower-cases it
  EXPECT_EQ(t.port, 8080);
  EXPECT_EQ(t.path, "/");
  t = ok(parse_absolute_target("http://[::1]:81?q"));
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.path, "/?q");
}

TEST(AbsoluteTarget, RefusesEverythingElse) {
  for (const char* bad :
       {"", "/relative", "example.com/x", "https://example.com/", "ftp://example.com/",
        "http://", "http:///x", "http://user:pw@example.com/", "http://example.com/#frag",
        "http://example.com:0/", "http://example.com:99999/", "http://a b/",
        "http://example.com/\x7f", "http://::1/"}) {
    EXPECT_TRUE(refused(parse_absolute_target(bad))) << bad;
  }
}

TEST(HttpRewrite, DropsHopByHopHeadersAndTheOnesConnectionNames) {
  const HeaderList in = {{"Host", "x"},
                         {"Connection", "keep-alive, X-Secret-Hop"},
                         {"X-Secret-Hop", "1"},
                         {"Proxy-Authorization", "Basic x"},
                         {"Proxy-Connection", "keep-alive"},
                         {"Keep-Alive", "300"},
                         {"TE", "trailers"},
                         {"Upgrade", "websocket"},
                         {"Transfer-Encoding", "chunked"},
                         {"Content-Length", "5"},
                         {"Expect", "100-continue"},
                         {"Accept", "*/*"},
                         {"user-agent", "curl"}};
  const HeaderList out = end_to_end_fields(in);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].first, "Accept");
  EXPECT_EQ(out[1].first, "user-agent");
}

TEST(HttpRewrite, WritesTheUpstreamRequestWithItsOwnFraming) {
  Framing chunked;
  chunked.chunked = true;
  EXPECT_EQ(request_head("POST", "/x?y", host_header("example.com", 80), {{"A", "b"}}, chunked),
            "POST /x?y HTTP/1.1\r\nHost: example.com\r\nA: b\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  Framing length;
  length.content_length = 3;
  EXPECT_EQ(request_head("PUT", "/", host_header("::1", 8080), {}, length),
            "PUT / HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 3\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(response_head(404, "Not Found", {}, Framing{}),
            "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
}

TEST(HttpRewrite, ARefusalSaysWhy) {
  const std::string r = refusal_response(403, "denied GET a:80: no rule matches (default deny)");
  EXPECT_EQ(r.rfind("HTTP/1.1 403 Forbidden\r\n", 0), 0u);
  EXPECT_NE(r.find("X-Forkvm-Egress: denied"), std::string::npos);
  const std::string body = "forkvm egress proxy: denied GET a:80: no rule matches (default deny)\n";
  EXPECT_NE(r.find("Content-Length: " + std::to_string(body.size())), std::string::npos);
  EXPECT_EQ(r.substr(r.size() - body.size()), body);
}

}  // namespace
}  // namespace forkvm::net
