// TLS interception by the egress proxy (net/egress_intercept.cpp): a guest that trusts the
// sandbox CA opens a CONNECT to a host with secret bindings and speaks TLS through it; the
// origin is an HTTPS server on the host's loopback whose certificate comes from a separate
// "public" test CA, given to the proxy as EgressConfig::upstream_ca_file. Also
// Sandbox::http_request's client over HTTPS through such a proxy. Loopback only; every read
// has a timeout and every loop is bounded.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "forkvm/sandbox_errors.hpp"
#include "net/egress_proxy.hpp"
#include "net/egress_rules.hpp"
#include "net/host_request.hpp"
#include "net/tls_authority.hpp"
#include "tests/support/audit_log.hpp"
#include "tests/support/https_test_server.hpp"
#include "tests/support/raw_http.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::net {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSecret = "real-value-1";
constexpr const char* kPlaceholder = "forkvm-secret-API_KEY";

// The guest: a blocking Unix socket client (10 s timeouts) that sends a CONNECT, then speaks
// TLS with OpenSSL on the same descriptor, trusting the PEM certificates it is given.
class TlsGuest {
 public:
  explicit TlsGuest(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_STREAM, 0)) {
    // OpenSSL writes with write(2): a proxy that closed must not kill the test with SIGPIPE.
    ::signal(SIGPIPE, SIG_IGN);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~TlsGuest() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (context_ != nullptr) SSL_CTX_free(context_);
    ::close(fd_);
  }
  TlsGuest(const TlsGuest&) = delete;
  TlsGuest& operator=(const TlsGuest&) = delete;

  // Sends CONNECT `authority` and reads the proxy's answer header; returns it.
  std::string connect(const std::string& authority) {
    if (!connected_) return {};
    const std::string request =
        "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
    if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) < 0) return {};
    std::string answer;
    char c;
    while (answer.find("\r\n\r\n") == std::string::npos && answer.size() < 4096 &&
           ::recv(fd_, &c, 1, 0) == 1) {
      answer += c;
    }
    return answer;
  }
  // The TLS handshake: `trusted` PEM anchors, SNI `sni` ("" none), the certificate checked for
  // `name`. True when it completed and verified.
  bool start_tls(const std::vector<std::string>& trusted, const std::string& sni,
                 const std::string& name) {
    context_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(context_, SSL_VERIFY_PEER, nullptr);
    for (const auto& pem : trusted) {
      BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
      X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
      X509_STORE_add_cert(SSL_CTX_get_cert_store(context_), cert);
      X509_free(cert);
      BIO_free(bio);
    }
    ssl_ = SSL_new(context_);
    SSL_set_fd(ssl_, fd_);
    if (!sni.empty()) {
      SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(sni.c_str()));
    }
    SSL_set1_host(ssl_, name.c_str());
    const bool ok = SSL_connect(ssl_) == 1;
    ERR_clear_error();
    return ok;
  }
  // The common name of the issuer of the server's certificate.
  std::string issuer() const {
    X509* peer = SSL_get0_peer_certificate(ssl_);
    if (peer == nullptr) return {};
    char name[256] = {};
    X509_NAME_get_text_by_NID(X509_get_issuer_name(peer), NID_commonName, name, sizeof name);
    return name;
  }
  void send(const std::string& data) {
    std::size_t done = 0;
    for (int i = 0; i < 100000 && done < data.size(); ++i) {
      const int n = SSL_write(ssl_, data.data() + done, static_cast<int>(data.size() - done));
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }
  // Reads until the end of the TLS stream, an error or the timeout (at most `max` bytes kept).
  std::string read_all(std::size_t max = 64u << 20) {
    std::string out;
    char buf[16384];
    for (;;) {
      const int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) break;
      total_ += static_cast<uint64_t>(n);
      if (out.size() < max) out.append(buf, static_cast<std::size_t>(n));
    }
    ERR_clear_error();
    return out;
  }
  uint64_t total() const { return total_; }
  // Reads plain bytes until EOF, an error or the timeout.
  std::string read_raw() {
    std::string out;
    char buf[4096];
    for (int i = 0; i < 1000; ++i) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }

 private:
  int fd_;
  bool connected_ = false;
  SSL_CTX* context_ = nullptr;
  SSL* ssl_ = nullptr;
  uint64_t total_ = 0;
};

using test::body_of;
using test::status_of;

// Loopback is reached through a block rule; the secret is bound to `bound_host`.
EgressPolicy policy_binding(const std::string& bound_host) {
  EgressPolicy policy;
  EgressRule loopback;
  loopback.host = "127.0.0.0/8";
  policy.rules.push_back(loopback);
  SecretBinding key;
  key.name = "API_KEY";
  key.hosts = {bound_host};
  key.header = "X-Api-Key";
  key.value = kSecret;
  policy.secrets.push_back(key);
  return policy;
}

void expect_no_secret(const EgressEvent& e) {
  for (const std::string* field : {&e.method, &e.path, &e.host, &e.address, &e.rule, &e.error}) {
    EXPECT_EQ(field->find(kSecret), std::string::npos) << *field;
  }
}

class EgressInterceptTest : public ::testing::Test {
 protected:
  EgressInterceptTest() {
    std::ofstream(public_ca_file_) << public_ca_->ca_pem();
  }
  void start(EgressPolicy policy, bool trust_origin = true) {
    TlsInterception tls;
    if (trust_origin) tls.upstream_ca_file = public_ca_file_;
    policy_ = std::make_shared<const CompiledPolicy>(std::move(policy));
    proxy_ = std::make_unique<EgressProxy>(path_, policy_, audit_.callback(), tls);
  }
  std::string authority() const { return "localhost:" + std::to_string(server_.port()); }
  // CONNECT to the origin, TLS trusting the sandbox CA with SNI `sni`, one request: the
  // decrypted answer ("" when the handshake failed).
  std::string https(const std::string& request, const std::string& sni = "localhost") {
    TlsGuest guest(path_);
    const std::string established = guest.connect(authority());
    EXPECT_EQ(status_of(established), 200) << established;
    if (!guest.start_tls({proxy_->ca_pem()}, sni, "localhost")) return {};
    issuer_ = guest.issuer();
    guest.send(request);
    return guest.read_all();
  }

  test::TempDir dir_;
  std::string path_ = dir_ / "egress.sock";
  std::string public_ca_file_ = dir_ / "public-ca.pem";
  std::shared_ptr<TlsAuthority> public_ca_ = TlsAuthority::create("test public CA");
  test::HttpsTestServer server_{public_ca_->server_context("localhost")};
  test::AuditLog audit_;
  std::shared_ptr<const CompiledPolicy> policy_;
  std::unique_ptr<EgressProxy> proxy_;
  std::string issuer_;
};

TEST_F(EgressInterceptTest, ThePlaceholderReachesABoundHostAsTheValue) {
  start(policy_binding("localhost"));
  const std::string r = https("GET /headers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " +
                              std::string(kPlaceholder) + "\r\n\r\n");
  ASSERT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(issuer_, "forkvm sandbox CA");  // the proxy's leaf, not the origin's certificate
  const std::string seen = body_of(r);
  EXPECT_NE(seen.find("Authorization: Bearer " + std::string(kSecret)), std::string::npos) << seen;
  EXPECT_NE(seen.find("X-Api-Key: " + std::string(kSecret)), std::string::npos) << seen;
  EXPECT_EQ(seen.find(kPlaceholder), std::string::npos) << seen;
  EXPECT_NE(r.find("Connection: close"), std::string::npos);
  const auto events = audit_.wait_for(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].intercepted);
  EXPECT_TRUE(events[0].allowed);
  EXPECT_EQ(events[0].method, "GET");
  EXPECT_EQ(events[0].path, "/headers");
  EXPECT_EQ(events[0].host, "localhost");
  EXPECT_EQ(events[0].status, 200);
  EXPECT_EQ(events[0].error, "");
  EXPECT_GT(events[0].bytes_down, 0u);
  expect_no_secret(events[0]);
}

TEST_F(EgressInterceptTest, ABodyGoesThroughBothWays) {
  start(policy_binding("localhost"));
  const std::string r = https("POST /echo HTTP/1.1\r\nHost: localhost\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(body_of(r), "hello");
}

TEST_F(EgressInterceptTest, AnUnboundHostIsStillAnUntouchedTunnel) {
  start(policy_binding("elsewhere.example"));
  {
    TlsGuest guest(path_);
    ASSERT_EQ(status_of(guest.connect(authority())), 200);
    ASSERT_TRUE(
        guest.start_tls({proxy_->ca_pem(), public_ca_->ca_pem()}, "localhost", "localhost"));
    EXPECT_EQ(guest.issuer(), "test public CA");  // the origin's own certificate
    guest.send("GET /headers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " +
               std::string(kPlaceholder) + "\r\nConnection: close\r\n\r\n");
    const std::string r = guest.read_all();
    EXPECT_EQ(status_of(r), 200) << r;
    EXPECT_NE(body_of(r).find(kPlaceholder), std::string::npos) << r;
    EXPECT_EQ(body_of(r).find(kSecret), std::string::npos) << r;
  }  // the tunnel is audited once both directions have ended
  const auto events = audit_.wait_for(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].intercepted);
  EXPECT_EQ(events[0].method, "CONNECT");
}

TEST_F(EgressInterceptTest, AnUntrustedUpstreamGetsA502InsideTls) {
  start(policy_binding("localhost"), false);  // the public test CA is not trusted
  const std::string r = https("GET /headers HTTP/1.1\r\nHost: localhost\r\nX-Api-Key: " +
                              std::string(kPlaceholder) + "\r\n\r\n");
  EXPECT_EQ(status_of(r), 502) << r;
  EXPECT_NE(r.find("X-Forkvm-Egress: upstream TLS: certificate verify failed"),
            std::string::npos) << r;
  EXPECT_EQ(r.find(kSecret), std::string::npos) << r;
  EXPECT_EQ(server_.requests(), 0);
  const auto events = audit_.wait_for(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].intercepted);
  EXPECT_EQ(events[0].status, 502);
  EXPECT_NE(events[0].error.find("certificate verify failed"), std::string::npos)
      << events[0].error;
  expect_no_secret(events[0]);
}

TEST_F(EgressInterceptTest, AnSniForAnotherHostIsRefused) {
  start(policy_binding("localhost"));
  EXPECT_EQ(https("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", "evil.example"), "");
  EXPECT_EQ(server_.requests(), 0);
  const auto events = audit_.wait_for(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_NE(events[0].error.find("SNI names evil.example"), std::string::npos)
      << events[0].error;
  // Without SNI the handshake is fine (the leaf is still checked for the name).
  const std::string r = https("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", "");
  EXPECT_EQ(status_of(r), 200) << r;
}

TEST_F(EgressInterceptTest, LimitsHoldInsideTls) {
  EgressPolicy policy = policy_binding("localhost");
  policy.limits.max_header_bytes = 1024;
  policy.limits.max_bytes_per_connection = 1 << 20;
  start(policy);
  std::string r = https("GET /hello HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n");
  EXPECT_EQ(status_of(r), 431) << r;
  r = https("GET /bytes?n=5000000 HTTP/1.1\r\nHost: localhost\r\n\r\n");
  EXPECT_EQ(status_of(r), 502) << r;
  EXPECT_NE(body_of(r).find("byte limit"), std::string::npos) << r;
  r = https("POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n" + std::string(4096, 'p'));
  EXPECT_EQ(status_of(r), 413) << r;
  r = https("GET http://localhost/hello HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(r), 400) << r;  // origin form only inside TLS
  const auto events = audit_.wait_for(4);
  ASSERT_EQ(events.size(), 4u);
  for (const auto& e : events) {
    EXPECT_TRUE(e.intercepted);
    expect_no_secret(e);
  }
}

TEST_F(EgressInterceptTest, AStalledUpstreamGetsA504InsideTls) {
  EgressPolicy policy = policy_binding("localhost");
  // Long enough for the TLS handshake and the leaf certificate on a loaded 2-core machine
  // (at 300 ms the proxy once closed the guest mid-handshake there: status 0, not 504).
  policy.limits.idle_timeout = 1s;
  start(policy);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string r = https("GET /stall HTTP/1.1\r\nHost: localhost\r\n\r\n");
  EXPECT_EQ(status_of(r), 504) << r;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(EgressInterceptTest, AGuestThatNeverSpeaksTlsIsClosedWhenIdle) {
  EgressPolicy policy = policy_binding("localhost");
  policy.limits.idle_timeout = 300ms;
  start(policy);
  TlsGuest guest(path_);
  ASSERT_EQ(status_of(guest.connect(authority())), 200);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(guest.read_raw(), "");  // no ClientHello: closed by the idle timeout
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  const auto events = audit_.wait_for(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].intercepted);
}

TEST_F(EgressInterceptTest, MethodRulesDecideTheRequestsInside) {
  EgressPolicy policy = policy_binding("localhost");
  EgressRule no_posts;
  no_posts.action = EgressAction::kDeny;
  no_posts.host = "localhost";
  no_posts.methods = {"POST"};
  policy.rules.insert(policy.rules.begin(), no_posts);
  start(policy);
  EXPECT_EQ(status_of(https("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")), 200);
  const std::string r = https("POST /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
  EXPECT_EQ(status_of(r), 403) << r;
  EXPECT_NE(r.find("X-Forkvm-Egress: denied"), std::string::npos) << r;
  EXPECT_EQ(server_.requests(), 1);
}

TEST_F(EgressInterceptTest, HttpRequestOverHttpsToABoundHost) {
  start(policy_binding("localhost"));
  HttpRequest request;
  request.url = "https://" + authority() + "/headers";
  request.headers = {{"Authorization", "Bearer " + std::string(kPlaceholder)}};
  request.timeout = 20s;
  const HttpResponse r = http_request_via_proxy(proxy_->endpoint(), request);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("Authorization: Bearer " + std::string(kSecret)), std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("X-Api-Key: " + std::string(kSecret)), std::string::npos) << r.body;
  const auto events = audit_.wait_for(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].intercepted);
}

TEST_F(EgressInterceptTest, HttpRequestOverHttpsToAnUnboundHostTrustsTheAnchorsFile) {
  start(policy_binding("elsewhere.example"));
  HttpRequest request;
  request.url = "https://" + authority() + "/headers";
  request.headers = {{"Authorization", "Bearer " + std::string(kPlaceholder)}};
  request.timeout = 20s;
  const HttpResponse r = http_request_via_proxy(proxy_->endpoint(), request);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(kPlaceholder), std::string::npos) << r.body;
}

TEST_F(EgressInterceptTest, HttpRequestGetsTheUpstreamTlsFailureAsAnError) {
  start(policy_binding("localhost"), false);
  HttpRequest request;
  request.url = "https://" + authority() + "/hello";
  request.timeout = 20s;
  try {
    http_request_via_proxy(proxy_->endpoint(), request);
    ADD_FAILURE() << "no error";
  } catch (const EgressError& e) {
    EXPECT_NE(std::string(e.what()).find("certificate verify failed"), std::string::npos)
        << e.what();
  }
}

TEST_F(EgressInterceptTest, AForkSharesItsParentsAuthority) {
  start(policy_binding("localhost"));
  TlsInterception shared;
  shared.authority = proxy_->authority();
  const EgressProxy child(dir_ / "child.sock", policy_, nullptr, shared);
  EXPECT_EQ(child.ca_pem(), proxy_->ca_pem());
  const EgressProxy stranger(dir_ / "stranger.sock", policy_, nullptr);
  EXPECT_NE(stranger.ca_pem(), proxy_->ca_pem());
  TlsInterception bad;
  bad.upstream_ca_file = dir_ / "missing.pem";
  EXPECT_THROW(EgressProxy(dir_ / "bad.sock", policy_, nullptr, bad), ConfigError);
}

}  // namespace
}  // namespace forkvm::net
