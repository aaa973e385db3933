// The egress proxy (net/egress_proxy.hpp) on a Unix socket, as the vsock device connects the
// guest to it, against an origin server on the host's loopback (tests/support). Every request
// loop is bounded; every read has a timeout.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "forkvm/errors.hpp"
#include "net/egress_proxy.hpp"
#include "net/egress_rules.hpp"
#include "tests/support/audit_log.hpp"
#include "tests/support/guest_client.hpp"
#include "tests/support/http_test_server.hpp"
#include "tests/support/raw_http.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::net {
namespace {

using namespace std::chrono_literals;

using test::AuditLog;

using test::GuestClient;
using test::body_of;
using test::status_of;

EgressRule rule(EgressAction action, std::string host) {
  EgressRule r;
  r.action = action;
  r.host = std::move(host);
  return r;
}

class EgressProxyTest : public ::testing::Test {
 protected:
  void start(EgressPolicy policy) {
    proxy_ = std::make_unique<EgressProxy>(
        path_, std::make_shared<const CompiledPolicy>(std::move(policy)), audit_.callback());
  }
  std::string get(const std::string& request) {
    GuestClient client(path_);
    EXPECT_TRUE(client.connected());
    client.send(request);
    return client.read_all();
  }
  std::string url(const std::string& host, const std::string& path) const {
    return "http://" + host + ":" + std::to_string(server_.port()) + path;
  }

  test::TempDir dir_;
  std::string path_ = dir_ / "egress.sock";
  test::HttpTestServer server_;
  AuditLog audit_;
  std::unique_ptr<EgressProxy> proxy_;
};

TEST_F(EgressProxyTest, DeniesByDefaultWithTheReason) {
  start({});
  const std::string r = get("GET " + url("127.0.0.1", "/hello") + " HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_of(r), 403) << r;
  EXPECT_NE(body_of(r).find("default deny"), std::string::npos) << r;
  EXPECT_EQ(server_.requests(), 0);
  const auto events = audit_.wait_for(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].allowed);
  EXPECT_EQ(events[0].status, 403);
  EXPECT_EQ(events[0].method, "GET");
  EXPECT_EQ(events[0].host, "127.0.0.1");
}

TEST_F(EgressProxyTest, ForwardsAnAllowedRequestInOriginForm) {
  EgressPolicy policy;
  policy.rules.push_back(rule(EgressAction::kAllow, "127.0.0.0/8"));
  start(policy);
  const std::string r = get("GET " + url("127.0.0.1", "/headers") +
                            " HTTP/1.1\r\nHost: wrong\r\nProxy-Connection: keep-alive\r\n"
                            "Proxy-Authorization: Basic eA==\r\nX-Kept: 1\r\n\r\n");
  ASSERT_EQ(status_of(r), 200) << r;
  const std::string seen = body_of(r);
  EXPECT_NE(seen.find("X-Kept: 1"), std::string::npos) << seen;
  EXPECT_NE(seen.find("Host: 127.0.0.1:" + std::to_string(server_.port())), std::string::npos);
  EXPECT_EQ(seen.find("Proxy-"), std::string::npos) << seen;
  EXPECT_NE(r.find("Connection: close"), std::string::npos);
  const auto events = audit_.wait_for(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].allowed);
  EXPECT_EQ(events[0].status, 200);
  EXPECT_EQ(events[0].address, "127.0.0.1");
  EXPECT_GT(events[0].bytes_down, 0u);
}

TEST_F(EgressProxyTest, ANameThatResolvesToLoopbackIsRefusedUnlessABlockAllowsIt) {
  EgressPolicy policy;
  policy.rules.push_back(rule(EgressAction::kAllow, "localhost"));
  start(policy);
  const std::string r = get("GET " + url("localhost", "/hello") + " HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(r), 403) << r;
  EXPECT_NE(body_of(r).find("127.0.0.1"), std::string::npos) << r;
  EXPECT_EQ(server_.requests(), 0);
}

TEST_F(EgressProxyTest, TunnelsAConnect) {
  EgressPolicy policy;
  policy.rules.push_back(rule(EgressAction::kAllow, "127.0.0.1"));
  start(policy);
  {
    GuestClient client(path_);
    ASSERT_TRUE(client.connected());
    const std::string authority = "127.0.0.1:" + std::to_string(server_.port());
    client.send("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
    const std::string established = client.read_until("\r\n\r\n");
    ASSERT_EQ(status_of(established), 200) << established;
    client.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const std::string r = client.read_all();
    EXPECT_EQ(status_of(r), 200) << r;
    EXPECT_EQ(body_of(r), "hello");
  }  // the tunnel is audited once both directions have ended
  const auto events = audit_.wait_for(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].method, "CONNECT");
  EXPECT_EQ(events[0].status, 200);
  EXPECT_GT(events[0].bytes_up, 0u);
}

TEST_F(EgressProxyTest, MethodAndPathRulesNeverOpenATunnel) {
  EgressPolicy policy;
  EgressRule get_only = rule(EgressAction::kAllow, "127.0.0.1");
  get_only.methods = {"GET"};
  policy.rules.push_back(get_only);
  start(policy);
  const std::string authority = "127.0.0.1:" + std::to_string(server_.port());
  EXPECT_EQ(status_of(get("CONNECT " + authority + " HTTP/1.1\r\n\r\n")), 403);
  EXPECT_EQ(status_of(get("POST " + url("127.0.0.1", "/echo") +
                          " HTTP/1.1\r\nContent-Length: 1\r\n\r\nx")), 403);
  EXPECT_EQ(status_of(get("GET " + url("127.0.0.1", "/hello") + " HTTP/1.1\r\n\r\n")), 200);
}

TEST_F(EgressProxyTest, RelaysChunkedAndLengthBodiesBothWays) {
  EgressPolicy policy;
  policy.rules.push_back(rule(EgressAction::kAllow, "127.0.0.1"));
  start(policy);
  const std::string chunked_request = "POST " + url("127.0.0.1", "/echo") +
                                      " HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  std::string r = get(chunked_request);
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "hello world");
  r = get("GET " + url("127.0.0.1", "/chunked?n=300000") + " HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(r), 200);
  EXPECT_NE(r.find("Transfer-Encoding: chunked"), std::string::npos);
  r = get("GET " + url("127.0.0.1", "/bytes?n=1000000") + " HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(r), 200);
  EXPECT_EQ(body_of(r).size(), 1000000u);
}

TEST_F(EgressProxyTest, ASecondRequestBehindTheBodyIsNotForwarded) {
  EgressPolicy policy;
  EgressRule post_only = rule(EgressAction::kAllow, "127.0.0.1");
  post_only.methods = {"POST"};
  policy.rules.push_back(post_only);
  start(policy);
  // The smuggled DELETE sits behind a correctly framed body: the proxy relays exactly the
  // body and closes, so the origin sees one request.
  const std::string r = get("POST " + url("127.0.0.1", "/echo") +
                            " HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
                            "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(body_of(r), "hi");
  EXPECT_EQ(server_.requests(), 1);
}

TEST_F(EgressProxyTest, SubstitutesSecretsOnlyForTheBoundHost) {
  EgressPolicy policy;
  policy.rules.push_back(rule(EgressAction::kAllow, "127.0.0.0/8"));
  SecretBinding key;
  key.name = "API_KEY";
  key.hosts = {"localhost"};
  key.header = "X-Api-Key";
  key.value = "real-value-1";
  policy.secrets.push_back(key);
  start(policy);
  const std::string placeholder = "forkvm-secret-API_KEY";
  std::string r = get("GET " + url("localhost", "/headers") +
                      " HTTP/1.1\r\nAuthorization: Bearer " + placeholder + "\r\n\r\n");
  ASSERT_EQ(status_of(r), 200) << r;
  EXPECT_NE(body_of(r).find("Authorization: Bearer real-value-1"), std::string::npos) << r;
  EXPECT_NE(body_of(r).find("X-Api-Key: real-value-1"), std::string::npos) << r;
  r = get("GET " + url("127.0.0.1", "/headers") + " HTTP/1.1\r\nAuthorization: Bearer " +
          placeholder + "\r\n\r\n");
  ASSERT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r).find("real-value-1"), std::string::npos) << r;
  EXPECT_NE(body_of(r).find(placeholder), std::string::npos) << r;
  for (const auto& e : audit_.wait_for(2)) {
    EXPECT_EQ(e.rule.find("real-value-1"), std::string::npos);
    EXPECT_EQ(e.error.find("real-value-1"), std::string::npos);
  }
}

TEST_F(EgressProxyTest, AnswersMalformedAndOversizedRequests) {
  EgressPolicy policy;
  policy.rules.push_back(rule(EgressAction::kAllow, "*"));
  policy.limits.max_header_bytes = 1024;
  start(policy);
  EXPECT_EQ(status_of(get("NOT HTTP AT ALL\r\n\r\n")), 400);
  EXPECT_EQ(status_of(get("GET /relative HTTP/1.1\r\n\r\n")), 400);
  EXPECT_EQ(status_of(get("GET https://example.com/ HTTP/1.1\r\n\r\n")), 400);
  EXPECT_EQ(status_of(get("GET http://user@example.com/ HTTP/1.1\r\n\r\n")), 400);
  EXPECT_EQ(status_of(get("CONNECT example.com HTTP/1.1\r\n\r\n")), 400);
  EXPECT_EQ(status_of(get("GET http://0x7f.1/ HTTP/1.1\r\n\r\n")), 400);
  EXPECT_EQ(status_of(get("GET http://a/ HTTP/1.1\r\nX: " + std::string(2000, 'a') +
                          "\r\n\r\n")), 431);
  EXPECT_EQ(server_.requests(), 0);
}

TEST_F(EgressProxyTest, StopsAConnectionAtItsByteLimit) {
  EgressPolicy policy;
  policy.rules.push_back(rule(EgressAction::kAllow, "127.0.0.1"));
  policy.limits.max_bytes_per_connection = 1 << 20;
  start(policy);
  // A declared length over the limit is refused up front, with a 502 saying so.
  const std::string r = get("GET " + url("127.0.0.1", "/bytes?n=50000000") + " HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(r), 502) << r;
  EXPECT_NE(body_of(r).find("byte limit"), std::string::npos) << r;
  // A request body declared over the limit, sent with its header in one write: 413.
  const std::string post = get("POST " + url("127.0.0.1", "/echo") +
                               " HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n" +
                               std::string(4096, 'p'));
  EXPECT_EQ(status_of(post), 413) << post;
  // A chunked body (no length to check first) is cut at the limit.
  GuestClient client(path_);
  client.send("GET " + url("127.0.0.1", "/chunked?n=50000000") + " HTTP/1.1\r\n\r\n");
  client.read_all(0);
  EXPECT_LE(client.total(), (1u << 20) + 4096u);
  const auto events = audit_.wait_for(3);
  ASSERT_EQ(events.size(), 3u);
  for (const auto& e : events) EXPECT_NE(e.error.find("byte limit"), std::string::npos) << e.error;
}

TEST_F(EgressProxyTest, AStalledUpstreamGetsA504) {
  EgressPolicy policy;
  policy.rules.push_back(rule(EgressAction::kAllow, "127.0.0.1"));
  policy.limits.idle_timeout = 300ms;
  start(policy);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string r = get("GET " + url("127.0.0.1", "/stall") + " HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(r), 504) << r;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(EgressProxyTest, AnIdleGuestIsClosed) {
  EgressPolicy policy;
  policy.limits.idle_timeout = 200ms;
  start(policy);
  GuestClient client(path_);
  client.send("GET http://a/ HTTP/1.1\r\n");  // never finishes its header
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(client.read_all(), "");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(EgressProxyTest, RefusesConnectionsOverTheLimitAndServesTheRest) {
  EgressPolicy policy;
  policy.rules.push_back(rule(EgressAction::kAllow, "127.0.0.1"));
  policy.limits.max_connections = 2;
  start(policy);
  GuestClient a(path_), b(path_);
  a.send("GET http://127.0.0.1");  // both held open, half a request each
  b.send("GET http://127.0.0.1");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(status_of(get("GET " + url("127.0.0.1", "/hello") + " HTTP/1.1\r\n\r\n")), 503);
  a.send(":" + std::to_string(server_.port()) + "/hello HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(a.read_all()), 200);
}

TEST_F(EgressProxyTest, APolicyReplacedWhileRunningDecidesTheNextRequest) {
  start({});
  const std::string request = "GET " + url("127.0.0.1", "/hello") + " HTTP/1.1\r\n\r\n";
  EXPECT_EQ(status_of(get(request)), 403);
  EgressPolicy open;
  open.rules.push_back(rule(EgressAction::kAllow, "127.0.0.1"));
  proxy_->set_policy(std::make_shared<const CompiledPolicy>(open));
  EXPECT_EQ(status_of(get(request)), 200);
}

TEST_F(EgressProxyTest, ShutsDownWithConnectionsOpen) {
  EgressPolicy policy;
  policy.rules.push_back(rule(EgressAction::kAllow, "127.0.0.1"));
  start(policy);
  GuestClient stalled(path_);
  stalled.send("GET " + url("127.0.0.1", "/stall") + " HTTP/1.1\r\n\r\n");
  std::this_thread::sleep_for(100ms);
  const auto t0 = std::chrono::steady_clock::now();
  proxy_.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(::access(path_.c_str(), F_OK), -1);
}

}  // namespace
}  // namespace forkvm::net
