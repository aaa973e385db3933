// Sandbox::http_request's client (net/host_request.hpp) through a real egress proxy on a Unix
// socket, against an origin on the host's loopback: answers, typed errors, the size cap, the
// timeout, and secrets. Loopback only; every wait is bounded.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "forkvm/sandbox_errors.hpp"
#include "net/egress_proxy.hpp"
#include "net/egress_rules.hpp"
#include "net/host_request.hpp"
#include "tests/support/http_test_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::net {
namespace {

using namespace std::chrono_literals;

class HostRequestTest : public ::testing::Test {
 protected:
  void start(EgressPolicy policy) {
    policy_ = std::make_shared<const CompiledPolicy>(std::move(policy));
    proxy_ = std::make_unique<EgressProxy>(path_, policy_, nullptr);
  }
  HttpResponse request(HttpRequest r) { return http_request_via_proxy(proxy_->endpoint(), r); }
  std::string url(const std::string& host, const std::string& path) const {
    return "http://" + host + ":" + std::to_string(server_.port()) + path;
  }
  static EgressPolicy allowing(const std::string& host) {
    EgressPolicy p;
    EgressRule r;
    r.host = host;
    p.rules.push_back(r);
    return p;
  }

  test::TempDir dir_;
  std::string path_ = dir_ / "egress.sock";
  test::HttpTestServer server_;
  std::shared_ptr<const CompiledPolicy> policy_;
  std::unique_ptr<EgressProxy> proxy_;
};

TEST_F(HostRequestTest, GetsAndPostsThroughTheProxy) {
  start(allowing("127.0.0.1"));
  HttpRequest get;
  get.url = url("127.0.0.1", "/hello");
  HttpResponse r = request(get);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello");
  HttpRequest post;
  post.method = "POST";
  post.url = url("127.0.0.1", "/echo");
  post.body = "some bytes";
  r = request(post);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "some bytes");
  HttpRequest missing;
  missing.url = url("127.0.0.1", "/nothing-here");
  EXPECT_EQ(request(missing).status, 404);  // the upstream's answer, not an error
}

TEST_F(HostRequestTest, TypedErrors) {
  start(allowing("127.0.0.1"));
  HttpRequest denied;
  denied.url = url("127.0.0.2", "/hello");
  EXPECT_THROW(request(denied), EgressDeniedError);
  HttpRequest big;
  big.url = url("127.0.0.1", "/bytes?n=100000");
  big.max_response_bytes = 1000;
  EXPECT_THROW(request(big), EgressError);
  HttpRequest slow;
  slow.url = url("127.0.0.1", "/stall");
  slow.timeout = 300ms;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(request(slow), TimeoutError);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  HttpRequest bad;
  bad.url = "ftp://127.0.0.1/";
  EXPECT_THROW(request(bad), ConfigError);
  bad.url = url("127.0.0.1", "/");
  bad.method = "GET /x";
  EXPECT_THROW(request(bad), ConfigError);
  bad.method = "GET";
  bad.headers = {{"X", "a\r\nInjected: 1"}};
  EXPECT_THROW(request(bad), ConfigError);
}

TEST_F(HostRequestTest, PutsTheSecretInForTheBoundHostOnly) {
  EgressPolicy policy = allowing("127.0.0.0/8");
  SecretBinding secret;
  secret.name = "TOKEN";
  secret.hosts = {"localhost"};
  secret.value = "host-only-value";
  policy.secrets.push_back(secret);
  start(policy);
  HttpRequest r;
  r.url = url("localhost", "/headers");
  r.headers = {{"Authorization", "Bearer forkvm-secret-TOKEN"}};
  EXPECT_NE(request(r).body.find("Authorization: Bearer host-only-value"), std::string::npos);
  r.url = url("127.0.0.1", "/headers");
  EXPECT_NE(request(r).body.find("Authorization: Bearer forkvm-secret-TOKEN"), std::string::npos);
}

TEST_F(HostRequestTest, HttpsToAServerWithoutTlsFailsInTheHandshake) {
  start(allowing("127.0.0.1"));
  HttpRequest r;
  r.url = "https://127.0.0.1:" + std::to_string(server_.port()) + "/hello";
  r.timeout = 10s;
  EXPECT_THROW(request(r), EgressError);
}

}  // namespace
}  // namespace forkvm::net
