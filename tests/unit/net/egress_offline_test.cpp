// The egress proxy and http_request with a host name that does not resolve. Resolving a name
// asks the host's DNS server, which may be off this machine, so this binary first moves into
// a network namespace of its own with only a loopback interface (its main() below): every
// query fails at once there, and nothing leaves the machine. Needs CAP_SYS_ADMIN for that;
// without it the tests skip and say why.
#include <sched.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "forkvm/egress.hpp"
#include "forkvm/errors.hpp"
#include "net/egress_proxy.hpp"
#include "net/egress_rules.hpp"
#include "net/host_request.hpp"
#include "tests/support/audit_log.hpp"
#include "tests/support/guest_client.hpp"
#include "tests/support/http_test_server.hpp"
#include "tests/support/raw_http.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

/// Why the binary is not in a namespace of its own ("" when it is).
std::string g_not_isolated = "main() did not run";

/// unshare(CLONE_NEWNET) for the main thread (every thread started later inherits it: the
/// network thread and its resolver thread) and loopback up. Returns "" or what failed.
std::string isolate() {
  if (::unshare(CLONE_NEWNET) != 0) {
    return std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) +
           " (needs CAP_SYS_ADMIN; a DNS query must not leave the machine)";
  }
  // iproute2 (installed by tools/install-deps.sh), run from this thread: in the new namespace.
  if (std::system("ip link set lo up") != 0) return "ip link set lo up failed in the new namespace";
  return "";
}

}  // namespace

namespace forkvm::net {
namespace {

using namespace std::chrono_literals;

constexpr const char* kNoSuchHost = "no-such-host.invalid";

class EgressOffline : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!g_not_isolated.empty()) GTEST_SKIP() << g_not_isolated;
    EgressPolicy policy;
    EgressRule names;
    names.host = "*.invalid";  // allowed by name: the refusal must come from resolution
    policy.rules.push_back(names);
    EgressRule loopback;
    loopback.host = "127.0.0.1";
    policy.rules.push_back(loopback);
    proxy_ = std::make_unique<EgressProxy>(
        path_, std::make_shared<const CompiledPolicy>(std::move(policy)), audit_.callback());
  }
  std::string get(const std::string& request) {
    test::GuestClient client(path_);
    EXPECT_TRUE(client.connected());
    client.send(request);
    return client.read_all();
  }

  test::TempDir dir_;
  std::string path_ = dir_ / "egress.sock";
  test::HttpTestServer server_;
  test::AuditLog audit_;
  std::unique_ptr<EgressProxy> proxy_;
};

TEST_F(EgressOffline, AGuestRequestForANameThatDoesNotResolveGetsA502SayingSo) {
  const std::string r =
      get(std::string("GET http://") + kNoSuchHost + "/x HTTP/1.1\r\nHost: " + kNoSuchHost + "\r\n\r\n");
  EXPECT_EQ(test::status_of(r), 502) << r;
  EXPECT_NE(r.find("X-Forkvm-Egress: unresolvable"), std::string::npos) << r;
  EXPECT_NE(test::body_of(r).find(std::string("cannot resolve ") + kNoSuchHost), std::string::npos) << r;
  // CONNECT too.
  const std::string c = get(std::string("CONNECT ") + kNoSuchHost + ":443 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(test::status_of(c), 502) << c;
  const auto events = audit_.wait_for(2, 10s);
  ASSERT_EQ(events.size(), 2u);
  for (const auto& e : events) {
    EXPECT_EQ(e.status, 502);
    EXPECT_NE(e.error.find("cannot resolve"), std::string::npos) << e.error;
  }
  // The proxy goes on serving.
  const std::string ok = get("GET http://127.0.0.1:" + std::to_string(server_.port()) +
                             "/hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(test::status_of(ok), 200) << ok;
}

TEST_F(EgressOffline, HttpRequestToANameThatDoesNotResolveIsATypedError) {
  HttpRequest request;
  request.url = std::string("http://") + kNoSuchHost + "/x";
  request.timeout = 20s;
  try {
    http_request_via_proxy(proxy_->endpoint(), request);
    FAIL() << "no error";
  } catch (const EgressUnresolvableError& e) {
    EXPECT_NE(std::string(e.what()).find(kNoSuchHost), std::string::npos) << e.what();
  }
  // An HTTPS URL fails at the CONNECT, the same way.
  request.url = std::string("https://") + kNoSuchHost + "/x";
  EXPECT_THROW(http_request_via_proxy(proxy_->endpoint(), request), EgressUnresolvableError);
}

}  // namespace
}  // namespace forkvm::net

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  g_not_isolated = isolate();  // before any thread starts
  return RUN_ALL_TESTS();
}
