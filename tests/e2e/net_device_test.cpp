// e2e tier: virtio-net on a TAP inside a network namespace the test makes itself, with
// tools/net/forkvm-netns (one namespace per sandbox, the same TAP name and guest address in
// each: Firecracker's clone networking). The guest (Debian root: ip, curl) gives eth0
// 172.16.0.2/30 and fetches from a server that listens on the TAP's 172.16.0.1 inside that
// namespace: small and 4 MiB downloads, a 2 MiB upload. A fork gets its own TAP in a second
// namespace, keeps the guest's addresses and routes, reaches that namespace's server, and its
// eth0 has moved to its own fresh MAC, which is also the source address the namespace saw.
// Traffic stays inside the namespaces the test made; every loop is bounded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "base/netns.hpp"
#include "forkvm/sandbox.hpp"
#include "tests/e2e/e2e_image.hpp"
#include "tests/support/run_process.hpp"

namespace forkvm::e2e {
namespace {

using namespace std::chrono_literals;

constexpr const char* kNetns = FORKVM_SOURCE_DIR "/tools/net/forkvm-netns";
constexpr const char* kTap = "fvtap0";
constexpr uint16_t kPort = 8080;

/// `forkvm-netns up NAME`: the namespace file (the script's last line), or throws with the
/// script's output.
std::string netns_up(const std::string& name) {
  const test::ProcessResult r = test::run_process(std::string(kNetns) + " up " + name);
  if (r.status != 0) {
    throw std::runtime_error("forkvm-netns up " + name + " failed (this test needs root, " +
                             "iproute2 and the tun module): " + r.output);
  }
  std::string out = r.output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out.substr(out.rfind('\n') + 1);  // npos + 1 == 0: a single line
}

void netns_down(const std::string& name) {
  (void)test::run_process(std::string(kNetns) + " down " + name);
}

/// An HTTP/1.0 server on `address`:8080 inside a network namespace (by default 172.16.0.1, the
/// TAP's end; "" for netns: this process's own): GET /hello answers "hello from <label>", GET
/// /peer the client's address, GET /bytes/<n> n bytes of a-z repeated, POST "got <n> sum <s>"
/// for a body of n bytes whose byte sum is s (mod 2^32). One connection at a time, each with
/// 20 s socket timeouts; stops on destruction.
class NamespaceServer {
 public:
  NamespaceServer(const std::string& netns, std::string label,
                  const std::string& address = "172.16.0.1")
      : label_(std::move(label)) {
    // The socket is made on a thread that entered the namespace, so it belongs to it; this
    // process's own namespace never changes.
    std::string error;
    const NetnsEntry entered = run_in_netns(netns, [&] {
      listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const int one = 1;
      ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(kPort);
      if (::inet_pton(AF_INET, address.c_str(), &a.sin_addr) != 1 ||
          ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
          ::listen(listener_, 8) != 0) {
        error = "cannot listen on " + address + ":8080 in " + (netns.empty() ? "this namespace" : netns);
      }
    });
    if (!entered) error = "cannot enter " + netns + ": " + entered.step;
    if (!error.empty()) throw std::runtime_error(error);
    thread_ = std::thread([this] { serve(); });
  }
  ~NamespaceServer() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      sockaddr_in peer{};
      socklen_t peer_len = sizeof peer;
      const int fd = ::accept4(listener_, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_CLOEXEC);
      if (fd < 0) continue;
      timeval tv{20, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      char text[INET_ADDRSTRLEN] = "?";
      ::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
      answer(fd, text);
      ::close(fd);
    }
  }

  void answer(int fd, const std::string& peer) {
    std::string in;
    char buf[65536];
    while (in.find("\r\n\r\n") == std::string::npos && in.size() < 16384) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
    }
    const size_t header_end = in.find("\r\n\r\n");
    if (header_end == std::string::npos) return;
    std::string body;
    if (in.rfind("POST ", 0) == 0) {
      const size_t cl = in.find("Content-Length: ");
      const size_t want = cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16, 12));
      // The byte sum (mod 2^32) shows the content arrived intact, not only its length.
      uint32_t sum = 0;
      for (size_t i = header_end + 4; i < in.size(); ++i) sum += static_cast<uint8_t>(in[i]);
      size_t got = in.size() - header_end - 4;
      while (got < want) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; ++i) sum += static_cast<uint8_t>(buf[i]);
        got += static_cast<size_t>(n);
      }
      body = "got " + std::to_string(got) + " sum " + std::to_string(sum);
    } else if (in.rfind("GET /peer ", 0) == 0) {
      body = peer;
    } else if (in.rfind("GET /bytes/", 0) == 0) {
      const size_t n = std::min<size_t>(std::stoul(in.substr(11, 12)), 64u << 20);
      body.resize(n);
      for (size_t i = 0; i < n; ++i) body[i] = static_cast<char>('a' + i % 26);
    } else {
      body = "hello from " + label_;
    }
    const std::string out = "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\nConnection: close\r\n\r\n" + body;
    for (size_t sent = 0; sent < out.size();) {
      const ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  std::string label_;
  int listener_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Runs a shell command in the guest and returns its stdout; fails the test on a non-zero exit.
std::string sh(Sandbox& box, const std::string& command) {
  ExecOptions o;
  o.timeout = 120s;
  const ExecResult r = box.exec({"sh", "-c", command}, o);
  EXPECT_EQ(r.exit_code, 0) << command << "\nstdout: " << r.stdout_data
                            << "\nstderr: " << r.stderr_data;
  return r.stdout_data;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class E2eNetDevice : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string id = std::to_string(::getpid() % 100000);
    parent_ns_name_ = "p" + id;
    child_ns_name_ = "c" + id;
    parent_ns_ = netns_up(parent_ns_name_);
    child_ns_ = netns_up(child_ns_name_);
    parent_server_ = new NamespaceServer(parent_ns_, "parent-ns");
    child_server_ = new NamespaceServer(child_ns_, "child-ns");
    SandboxConfig c;
    c.vm = builtin_config(1, 384, "");
    c.root_filesystem = image_dir() + "/rootfs.ext4";
    c.boot_timeout = kBootDeadline;
    c.request_timeout = 120s;
    NetConfig net;
    net.tap = kTap;
    net.netns = parent_ns_;
    c.vm.net = net;
    box_ = Sandbox::create(c).release();
  }
  static void TearDownTestSuite() {
    delete box_;
    delete parent_server_;
    delete child_server_;
    netns_down(parent_ns_name_);
    netns_down(child_ns_name_);
  }

  /// eth0 as the first test configures it (gtest runs them in order; configured here when a
  /// test runs alone): 172.16.0.2/30, default route via the TAP's 172.16.0.1.
  static void configure_parent() {
    sh(*box_, "ip -4 addr show eth0 | grep -q 172.16.0.2 || { ip addr add 172.16.0.2/30 dev eth0 && "
              "ip link set eth0 up && ip route add default via 172.16.0.1; }");
  }
  /// A fork of the parent with its NIC on the TAP fvtap0 of namespace file `netns`.
  static std::unique_ptr<Sandbox> fork_into(const std::string& netns) {
    ForkConfig fork;
    fork.boot_timeout = kBootDeadline;
    fork.request_timeout = 120s;
    NetConfig net;
    net.tap = kTap;
    net.netns = netns;
    fork.net = net;
    return box_->fork(fork);
  }

  static inline std::string parent_ns_name_, child_ns_name_, parent_ns_, child_ns_;
  static inline NamespaceServer* parent_server_ = nullptr;
  static inline NamespaceServer* child_server_ = nullptr;
  static inline Sandbox* box_ = nullptr;
};

// --noproxy: these requests go out of eth0, not through the agent's egress proxy.
constexpr const char* kCurl = "curl --noproxy '*' -sS --max-time 60 ";

TEST_F(E2eNetDevice, GuestReachesAServerInItsNamespace) {
  sh(*box_, "ip addr add 172.16.0.2/30 dev eth0 && ip link set eth0 up && "
            "ip route add default via 172.16.0.1");
  EXPECT_EQ(sh(*box_, std::string(kCurl) + "http://172.16.0.1:8080/hello"), "hello from parent-ns");
  // The TAP carries a virtio-net header, so the guest negotiated checksum and TCP
  // segmentation offloads both ways (the virtio device's features string: bit i at offset i).
  const std::string features = trimmed(sh(*box_, "cat /sys/class/net/eth0/device/features"));
  ASSERT_GE(features.size(), 13u) << features;
  for (const int bit : {0, 1, 7, 8, 11, 12}) EXPECT_EQ(features[bit], '1') << "bit " << bit << ": " << features;
  // 4 MiB down (GSO frames into the guest's receive queue) with its content checked, and
  // 2 MiB of random bytes up (GSO frames out) with their byte sum checked by the server.
  EXPECT_EQ(sh(*box_, std::string(kCurl) + "-o /tmp/down http://172.16.0.1:8080/bytes/4194304 && "
                      "python3 -c \"import sys; d = open('/tmp/down', 'rb').read(); "
                      "sys.exit(d != (b'abcdefghijklmnopqrstuvwxyz' * 161320)[:4194304])\" && echo same"),
            "same\n");
  const std::string sum = trimmed(sh(*box_, "head -c 2097152 /dev/urandom > /tmp/up && "
                                            "python3 -c \"print(sum(open('/tmp/up', 'rb').read()) % 2**32)\""));
  EXPECT_EQ(sh(*box_, std::string(kCurl) + "--data-binary @/tmp/up http://172.16.0.1:8080/upload"),
            "got 2097152 sum " + sum);
  const std::string rx = trimmed(sh(*box_, "cat /sys/class/net/eth0/statistics/rx_bytes"));
  EXPECT_GT(std::stoull(rx), 4000000u);
}

TEST_F(E2eNetDevice, ForkGetsItsOwnTapAndAFreshMac) {
  configure_parent();
  const std::string parent_mac = trimmed(sh(*box_, "cat /sys/class/net/eth0/address"));
  ASSERT_EQ(parent_mac.size(), 17u);
  auto child = fork_into(child_ns_);
  const std::string child_mac = trimmed(sh(*child, "cat /sys/class/net/eth0/address"));
  EXPECT_EQ(child_mac.size(), 17u);
  EXPECT_NE(child_mac, parent_mac);
  // The same address and route as the parent, now behind the child's own TAP.
  EXPECT_EQ(sh(*child, std::string(kCurl) + "http://172.16.0.1:8080/hello"), "hello from child-ns");
  // The child namespace learnt the guest's address with the child's MAC.
  const test::ProcessResult neigh =
      test::run_process("ip -n forkvm-" + child_ns_name_ + " neigh show 172.16.0.2");
  EXPECT_NE(neigh.output.find(child_mac), std::string::npos) << neigh.output;
  // The parent still has its own NIC and namespace.
  EXPECT_EQ(sh(*box_, std::string(kCurl) + "http://172.16.0.1:8080/hello"), "hello from parent-ns");
  EXPECT_EQ(trimmed(sh(*box_, "cat /sys/class/net/eth0/address")), parent_mac);
}

TEST_F(E2eNetDevice, AnUplinkNatsTheGuestToItsNamespacesAddress) {
  // forkvm-netns --uplink 7: a veth pair from this namespace (fvh-NAME 10.200.0.29) to the
  // sandbox's (10.200.0.30), a default route out of it, and SNAT of 172.16.0.2 to 10.200.0.30.
  // A fork attached there reaches a server on this side's address, and the server sees the
  // namespace's address, not the guest's: every clone leaves with its own.
  const std::string name = "u" + std::to_string(::getpid() % 100000);
  const test::ProcessResult up = test::run_process(std::string(kNetns) + " up " + name + " --uplink 7");
  ASSERT_EQ(up.status, 0) << up.output;
  struct Down {
    std::string name;
    ~Down() { netns_down(name); }
  } down{name};
  std::string ns = up.output;
  while (!ns.empty() && ns.back() == '\n') ns.pop_back();
  ns = ns.substr(ns.rfind('\n') + 1);
  NamespaceServer outside("", "outside", "10.200.0.29");
  configure_parent();
  auto child = fork_into(ns);
  EXPECT_EQ(sh(*child, std::string(kCurl) + "http://10.200.0.29:8080/hello"), "hello from outside");
  EXPECT_EQ(sh(*child, std::string(kCurl) + "http://10.200.0.29:8080/peer"), "10.200.0.30");
}

TEST_F(E2eNetDevice, ForkOfANetMachineWithoutANicIsRefused) {
  ForkConfig fork;
  fork.boot_timeout = kBootDeadline;
  EXPECT_THROW(box_->fork(fork), ConfigError);
  // The parent is untouched.
  EXPECT_EQ(sh(*box_, "echo ok"), "ok\n");
}

}  // namespace
}  // namespace forkvm::e2e
