// e2e tier: a sandbox's network over vsock, on the Debian root filesystem (curl, python3).
// curl and Python's urllib in the guest fetch from an HTTP server on the host's loopback
// through the agent's proxy listener and the host's egress proxy (allowed by an explicit
// address rule); CONNECT tunnels work; a host no rule allows gets a 403 and the audit says why;
// a secret's placeholder becomes the real value only on requests to its bound host, and the
// real value is nowhere in the guest's memory file; a fork inherits the policy and is audited
// as its own; expose_port serves a guest HTTP server to the host; forkvm run --allow-host
// --egress-log does the same from the command line. Every request goes to
// 127.0.0.1 of the machine running the test; every loop is bounded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "forkvm/sandbox.hpp"
#include "tests/e2e/e2e_image.hpp"
#include "tests/e2e/sandbox_helpers.hpp"
#include "tests/support/audit_log.hpp"
#include "tests/support/guest_client.hpp"
#include "net/tls_authority.hpp"
#include "tests/support/http_test_server.hpp"
#include "tests/support/loopback_request.hpp"
#include "tests/support/https_test_server.hpp"
#include "tests/support/read_text.hpp"
#include "tests/support/run_process.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::e2e {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSecretValue = "sk-real-4f1c9a7e2b";

using test::AuditLog;

EgressRule allow(const std::string& host) {
  EgressRule r;
  r.action = EgressAction::kAllow;
  r.host = host;
  return r;
}

// The guest's default NO_PROXY keeps 127.0.0.1 in the guest; these requests mean the host's.
ExecOptions through_proxy() {
  ExecOptions o;
  o.env = {{"NO_PROXY", ""}, {"no_proxy", ""}};
  o.timeout = 60s;
  return o;
}

EgressPolicy policy_with_secret() {
  EgressPolicy policy;
  policy.rules.push_back(allow("127.0.0.1"));
  // "localhost" resolves (on the host) to a loopback address: a name rule alone cannot reach
  // it, the block can.
  policy.rules.push_back(allow("127.0.0.0/8"));
  SecretBinding secret;
  secret.name = "API_KEY";
  secret.hosts = {"localhost"};
  secret.value = kSecretValue;
  policy.secrets.push_back(secret);
  return policy;
}

// A blocking HTTP GET to 127.0.0.1:port on the host; the raw response (10 s timeouts).
std::string host_get(uint16_t port, const std::string& path) {
  return test::loopback_exchange(port, "GET " + path + " HTTP/1.0\r\nHost: x\r\n\r\n");
}

bool file_contains(const std::string& path, const std::string& needle) {
  std::ifstream in(path, std::ios::binary);
  std::string window;
  std::vector<char> block(1 << 20);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    window.append(block.data(), static_cast<std::size_t>(in.gcount()));
    if (window.find(needle) != std::string::npos) return true;
    window.erase(0, window.size() > needle.size() ? window.size() - needle.size() : 0);
  }
  return false;
}

class E2eNetwork : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new test::HttpTestServer();
    // An HTTPS origin whose certificate a "public" CA of the test's own signed; the proxy
    // trusts that CA as an upstream anchor.
    public_ca_ = net::TlsAuthority::create("e2e public CA");
    https_server_ = new test::HttpsTestServer(public_ca_->server_context("localhost"));
    ca_dir_ = new test::TempDir("fvca");
    const std::string ca_file = *ca_dir_ / "public-ca.pem";
    std::ofstream(ca_file) << public_ca_->ca_pem();
    SandboxConfig c;
    c.vm = builtin_config(1, 384, "");
    c.root_filesystem = image_dir() + "/rootfs.ext4";
    c.boot_timeout = kBootDeadline;
    c.request_timeout = 120s;
    c.egress.policy = policy_with_secret();
    c.egress.audit = audit_.callback();
    c.egress.upstream_ca_file = ca_file;
    box_ = Sandbox::create(c).release();
  }
  static void TearDownTestSuite() {
    delete box_;
    delete server_;
    delete https_server_;
    delete ca_dir_;
  }
  static std::string url(const std::string& host, const std::string& path) {
    return "http://" + host + ":" + std::to_string(server_->port()) + path;
  }

  static inline test::HttpTestServer* server_ = nullptr;
  static inline std::shared_ptr<net::TlsAuthority> public_ca_;
  static inline test::HttpsTestServer* https_server_ = nullptr;
  static inline test::TempDir* ca_dir_ = nullptr;
  static inline Sandbox* box_ = nullptr;
  static inline AuditLog audit_;
};

TEST_F(E2eNetwork, CurlAndPythonFetchThroughTheProxy) {
  // The agent gave every exec the proxy variables.
  const ExecResult env = box_->exec({"sh", "-c", "echo $HTTP_PROXY $https_proxy $NO_PROXY"});
  EXPECT_EQ(env.stdout_data,
            "http://127.0.0.1:3128 http://127.0.0.1:3128 localhost,127.0.0.1,::1\n");

  const std::size_t before = audit_.size();
  ExecResult r = box_->exec({"curl", "-sS", "--max-time", "30", url("127.0.0.1", "/hello")},
                            through_proxy());
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "hello");
  r = box_->exec({"python3", "-c",
                  "import urllib.request\n"
                  "print(urllib.request.urlopen('" + url("127.0.0.1", "/hello") +
                      "', timeout=30).read().decode())"},
                 through_proxy());
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "hello\n");
  // curl --proxytunnel: a CONNECT tunnel, checked on the host name, bytes untouched.
  r = box_->exec({"curl", "-sS", "--max-time", "30", "--proxytunnel", url("127.0.0.1", "/hello")},
                 through_proxy());
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "hello");

  const auto events = audit_.wait_for(before + 3);
  ASSERT_GE(events.size(), before + 3);
  EXPECT_EQ(events[before].method, "GET");
  EXPECT_TRUE(events[before].allowed);
  EXPECT_EQ(events[before].status, 200);
  EXPECT_EQ(events[before].address, "127.0.0.1");
  EXPECT_EQ(events[before + 2].method, "CONNECT");
  EXPECT_GT(events[before + 2].bytes_down, 0u);
}

TEST_F(E2eNetwork, ADeniedHostGets403AndTheAuditSaysWhy) {
  const std::size_t before = audit_.size();
  const ExecResult r = box_->exec(
      {"curl", "-sS", "--max-time", "30", "-w", "\n%{http_code}", "http://10.1.2.3/x"},
      through_proxy());
  EXPECT_NE(r.stdout_data.find("default deny"), std::string::npos) << r.stdout_data;
  EXPECT_NE(r.stdout_data.find("\n403"), std::string::npos) << r.stdout_data;
  const auto events = audit_.wait_for(before + 1);
  ASSERT_GE(events.size(), before + 1);
  EXPECT_FALSE(events[before].allowed);
  EXPECT_EQ(events[before].host, "10.1.2.3");
  EXPECT_NE(events[before].rule.find("default deny"), std::string::npos);
}

TEST_F(E2eNetwork, ThePlaceholderBecomesTheSecretOnlyOnTheBoundHost) {
  // The guest sees the placeholder, never the value.
  const ExecResult env = box_->exec({"sh", "-c", "echo $API_KEY"});
  EXPECT_EQ(env.stdout_data, "forkvm-secret-API_KEY\n");
  const std::string fetch =
      "import os, urllib.request\n"
      "req = urllib.request.Request('%s', headers={'Authorization': 'Bearer ' + "
      "os.environ['API_KEY']})\n"
      "print(urllib.request.urlopen(req, timeout=30).read().decode())";
  auto with_url = [&](const std::string& u) {
    std::string code = fetch;
    code.replace(code.find("%s"), 2, u);
    return code;
  };
  ExecResult r = box_->exec({"python3", "-c", with_url(url("localhost", "/record"))},
                            through_proxy());
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "recorded\n");
  EXPECT_NE(server_->recorded().find(std::string("Authorization: Bearer ") + kSecretValue),
            std::string::npos)
      << server_->recorded();
  // Another host gets the placeholder.
  r = box_->exec({"python3", "-c", with_url(url("127.0.0.1", "/record"))}, through_proxy());
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  EXPECT_NE(server_->recorded().find("Authorization: Bearer forkvm-secret-API_KEY"),
            std::string::npos)
      << server_->recorded();
  EXPECT_EQ(server_->recorded().find(kSecretValue), std::string::npos);

  // The value never entered the guest: a snapshot of it holds the placeholder, not the value.
  test::TempDir tmp("fvnet");
  const std::string snap = tmp / "snap";
  box_->snapshot(snap);
  EXPECT_FALSE(file_contains(snap + "/memory", kSecretValue));
  EXPECT_FALSE(file_contains(snap + "/state.json", kSecretValue));
  EXPECT_TRUE(file_contains(snap + "/memory", "forkvm-secret-API_KEY"));
}

TEST_F(E2eNetwork, HttpsToTheBoundHostIsInterceptedAndGetsTheSecret) {
  // The guest trusts its sandbox's CA through the bundle the sandbox installed; curl and
  // Python send the placeholder inside TLS and the origin sees the real value (its /headers
  // answer shows it; only the value's prefix is named here, so the guest never holds it in
  // a command line).
  const std::string url = "https://localhost:" + std::to_string(https_server_->port()) + "/headers";
  const std::size_t before = audit_.size();
  ExecResult r = box_->exec({"sh", "-c", "curl -sS --max-time 30 -H \"Authorization: Bearer $API_KEY\" " +
                                             url + " | grep -c 'Bearer sk-real-'"},
                            through_proxy());
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "1\n") << r.stderr_data;
  const std::string python =
      "import os, urllib.request\n"
      "req = urllib.request.Request('" + url + "', headers={'X-Key': os.environ['API_KEY']})\n"
      "print(urllib.request.urlopen(req, timeout=30).read().decode().count('X-Key: sk-real-'))";
  r = box_->exec({"python3", "-c", python}, through_proxy());
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "1\n") << r.stderr_data;
  const auto events = audit_.wait_for(before + 2, 30s);
  ASSERT_GE(events.size(), before + 2);
  EXPECT_TRUE(events[before].intercepted);
  EXPECT_EQ(events[before].path, "/headers");
  // 127.0.0.1 has no binding: its CONNECT is a plain tunnel, the origin's own certificate
  // (not trusted by the guest) is what curl sees.
  r = box_->exec({"curl", "-sS", "--max-time", "30", "https://127.0.0.1:" +
                  std::to_string(https_server_->port()) + "/hello"}, through_proxy());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stderr_data.find("certificate"), std::string::npos) << r.stderr_data;
}

TEST_F(E2eNetwork, AForkInheritsThePolicyAndIsAuditedAsItsOwn) {
  AuditLog child_audit;
  ForkConfig fork;
  EgressConfig egress;
  egress.policy = policy_with_secret();
  egress.audit = child_audit.callback();
  fork.egress = egress;
  const std::size_t parent_before = audit_.size();
  auto child = box_->fork(fork);
  ExecResult r = child->exec({"curl", "-sS", "--max-time", "30", url("127.0.0.1", "/hello")},
                             through_proxy());
  EXPECT_EQ(r.stdout_data, "hello") << r.stderr_data;
  EXPECT_EQ(child_audit.wait_for(1).size(), 1u);
  EXPECT_EQ(audit_.size(), parent_before);

  // A fork without its own config inherits the parent's policy (and audit).
  auto inherited = box_->fork();
  r = inherited->exec({"curl", "-sS", "--max-time", "30", "-o", "/dev/null", "-w", "%{http_code}",
                       "http://10.9.9.9/"},
                      through_proxy());
  EXPECT_EQ(r.stdout_data, "403");
  r = inherited->exec({"curl", "-sS", "--max-time", "30", url("127.0.0.1", "/hello")},
                      through_proxy());
  EXPECT_EQ(r.stdout_data, "hello");
  EXPECT_GE(audit_.wait_for(parent_before + 2).size(), parent_before + 2);
  // The child has a CA of its own, installed over the parent's, and HTTPS with the secret
  // works through it.
  const std::string child_ca = inherited->exec({"cat", "/run/forkvm/egress-ca.pem"}).stdout_data;
  const std::string parent_ca = box_->exec({"cat", "/run/forkvm/egress-ca.pem"}).stdout_data;
  EXPECT_NE(child_ca.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(child_ca, parent_ca);
  r = inherited->exec({"sh", "-c", "curl -sS --max-time 30 -H \"Authorization: Bearer $API_KEY\" "
                       "https://localhost:" + std::to_string(https_server_->port()) +
                       "/headers | grep -c 'Bearer sk-real-'"},
                      through_proxy());
  EXPECT_EQ(r.stdout_data, "1\n") << r.stderr_data;
}

TEST_F(E2eNetwork, ExposePortServesAGuestServerToTheHost) {
  auto server = box_->start({"python3", "-m", "http.server", "8000", "--bind", "127.0.0.1",
                             "--directory", "/etc"});
  const ExposedPort exposed = box_->expose_port(8000);
  EXPECT_EQ(exposed.host, "127.0.0.1");
  EXPECT_NE(exposed.port, 0);
  std::string response;
  // Until python listens (bounded: 60 tries, 0.5 s apart).
  for (int i = 0; i < 60 && response.find("200") == std::string::npos; ++i) {
    response = host_get(exposed.port, "/debian_version");
    if (response.find("200") == std::string::npos) std::this_thread::sleep_for(500ms);
  }
  EXPECT_NE(response.find("HTTP/1.0 200"), std::string::npos) << response;
  EXPECT_NE(response.find("\r\n\r\n12."), std::string::npos) << response;
  // Several at once.
  std::vector<std::thread> clients;
  std::vector<std::string> answers(4);
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] { answers[i] = host_get(exposed.port, "/hostname"); });
  }
  for (auto& t : clients) t.join();
  for (const auto& a : answers) EXPECT_NE(a.find("200"), std::string::npos) << a;
  // The same server on a Unix socket: owner-only from creation; an existing path is refused,
  // not replaced.
  test::TempDir sockets("fvsock");
  const std::string path = sockets / "web.sock";
  const ExposedPort on_unix = box_->expose_port_unix(8000, path);
  EXPECT_EQ(on_unix.unix_path, path);
  EXPECT_EQ(on_unix.port, 0);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  test::GuestClient unix_client(path);
  ASSERT_TRUE(unix_client.connected());
  unix_client.send("GET /debian_version HTTP/1.0\r\n\r\n");
  const std::string via_unix = unix_client.read_all();
  EXPECT_NE(via_unix.find("HTTP/1.0 200"), std::string::npos) << via_unix;
  EXPECT_NE(via_unix.find("\r\n\r\n12."), std::string::npos) << via_unix;
  EXPECT_THROW(box_->expose_port_unix(8000, path), ConfigError);
  // A guest port nobody listens on closes the host connection.
  const ExposedPort closed = box_->expose_port(8001);
  EXPECT_EQ(host_get(closed.port, "/"), "");
  server->cancel();
}

// A hostile guest: half-sent headers held open, an oversized header, bytes that are not HTTP.
// Each gets its own answer or is closed by the limits, and a normal request still works.
TEST_F(E2eNetwork, HostileConnectionsHitTheLimitsAndOthersKeepWorking) {
  EgressPolicy strict = policy_with_secret();
  strict.limits.max_connections = 16;
  strict.limits.idle_timeout = 2s;
  strict.limits.max_header_bytes = 4096;
  box_->set_egress_policy(strict);
  const std::string script =
      "import socket, time, urllib.request\n"
      "def conn():\n"
      "    s = socket.create_connection(('127.0.0.1', 3128), timeout=30)\n"
      "    return s\n"
      "held = []\n"
      "for _ in range(12):\n"
      "    s = conn(); s.sendall(b'GET http://127.0.0.1/ HTTP/1.1\\r\\n'); held.append(s)\n"
      "s = conn(); s.sendall(b'GET http://127.0.0.1/ HTTP/1.1\\r\\nX: ' + b'a' * 8000 + "
      "b'\\r\\n\\r\\n')\n"
      "print(s.recv(12).decode())\n"
      "s = conn(); s.sendall(b'\\x16\\x03\\x01 not http\\r\\n\\r\\n')\n"
      "print(s.recv(12).decode())\n"
      "print(urllib.request.urlopen('" + url("127.0.0.1", "/hello") + "', timeout=30).read()"
      ".decode())\n"
      "time.sleep(4)\n"
      "print(sum(1 for h in held if h.recv(1) == b''))\n";
  const ExecResult r = box_->exec({"python3", "-c", script}, through_proxy());
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "HTTP/1.1 431\nHTTP/1.1 400\nhello\n12\n") << r.stderr_data;
  box_->set_egress_policy(policy_with_secret());
}

// The CLI: forkvm run with --allow-host and --egress-log on the built-in Debian image.
TEST_F(E2eNetwork, ForkvmRunAllowsAHostAndLogsTheRequest) {
  test::TempDir tmp("fvnetcli");
  const std::string log = tmp / "egress.jsonl";
  const auto r = test::run_process(
      std::string(FORKVM_CLI) + " run --allow-host 127.0.0.1 --egress-log " + log +
      " --env NO_PROXY= --env no_proxy= -- sh -c 'curl -sS --max-time 30 " +
      url("127.0.0.1", "/hello") + "; echo; curl -sS --max-time 30 http://10.7.7.7/'");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("hello"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("default deny"), std::string::npos) << r.output;
  const std::string lines = test::read_text(log);
  EXPECT_NE(lines.find("\"decision\":\"allow\""), std::string::npos) << lines;
  EXPECT_NE(lines.find("\"decision\":\"deny\""), std::string::npos) << lines;
  EXPECT_NE(lines.find("\"host\":\"10.7.7.7\""), std::string::npos) << lines;
}

// Last: every proxy, interception, exposed port and fork above ran on the filtered network
// thread (and filtered vCPU and device threads), and no filter refused a call they made.
TEST_F(E2eNetwork, EveryTestAboveRanWithinTheThreadFilters) {
  EXPECT_EQ(box_->exec({"/bin/echo", "filtered"}).stdout_data, "filtered\n");
  expect_threads_filtered_nothing_refused(3);  // at least a vCPU, the vsock worker, the network
}

}  // namespace
}  // namespace forkvm::e2e
