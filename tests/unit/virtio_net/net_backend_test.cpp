// unit tier: FrameEndpoint takes the descriptors that keep frame boundaries (datagram and
// sequenced-packet sockets, character devices such as a TAP) and refuses the rest; frames
// go through whole, and a truncated one reports its real length. A real TAP is tried only
// where /dev/net/tun and CAP_NET_ADMIN are available (skipped otherwise).
#include "devices/virtio/net/net_backend.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_tun.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.hpp"
#include "devices/virtio/net/net_device.hpp"
#include "devices/virtio/net/tap.hpp"
#include "forkvm/errors.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm {
namespace {

/// A socketpair of `type`.
std::pair<Fd, Fd> pair_of(int type) {
  int sv[2];
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
  return {Fd(sv[0]), Fd(sv[1])};
}

TEST(FrameEndpoint, AdoptsDatagramSocketsAndRefusesTheRest) {
  for (int type : {SOCK_DGRAM, SOCK_SEQPACKET}) {
    auto [a, b] = pair_of(type);
    FrameEndpoint e = FrameEndpoint::adopt(a.get());
    EXPECT_TRUE(e.is_socket());
    EXPECT_NE(e.fd(), a.get());  // a duplicate: the caller keeps its own
    EXPECT_NE(::fcntl(a.get(), F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(::fcntl(e.fd(), F_GETFD) & FD_CLOEXEC, 0);
    // No header to describe an offload with: none is offered.
    EXPECT_FALSE(e.vnet_header());
    EXPECT_EQ(e.set_offloads(TUN_F_CSUM), EINVAL);
    EXPECT_EQ(NetDevice(std::move(e), {}).device_features() & virtio_net::feature::kOffloads, 0u);
  }
  auto [s, t] = pair_of(SOCK_STREAM);
  EXPECT_THROW(FrameEndpoint::adopt(s.get()), ConfigError);  // no frame boundaries
  EXPECT_THROW(FrameEndpoint::adopt(-1), ConfigError);
  const int closed = ::dup(s.get());
  ::close(closed);
  EXPECT_THROW(FrameEndpoint::adopt(closed), ConfigError);
  test::TempDir dir("fvnet");
  Fd file(::open((dir / "f").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
  EXPECT_THROW(FrameEndpoint::adopt(file.get()), ConfigError);  // a regular file
  // A character device that is not a TAP (it would read 0 bytes forever).
  Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  try {
    FrameEndpoint::adopt(null.get());
    ADD_FAILURE() << "took /dev/null";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("not a TAP"), std::string::npos) << e.what();
  }
}

TEST(FrameEndpoint, FramesKeepTheirBoundariesAndTruncationIsReported) {
  auto [a, b] = pair_of(SOCK_SEQPACKET);
  FrameEndpoint e = FrameEndpoint::adopt(a.get());
  std::vector<uint8_t> buf(64);
  EXPECT_EQ(e.receive(buf).kind, FrameEndpoint::Received::Kind::kNone);
  const std::vector<uint8_t> f1(40, 1), f2(100, 2);
  EXPECT_EQ(e.send(f1), 0);
  std::vector<uint8_t> got(200);
  EXPECT_EQ(::recv(b.get(), got.data(), got.size(), 0), 40);
  ASSERT_EQ(::send(b.get(), f2.data(), f2.size(), 0), 100);
  ASSERT_EQ(::send(b.get(), f1.data(), f1.size(), 0), 40);
  const FrameEndpoint::Received r = e.receive(buf);  // 64 bytes of a 100-byte frame
  EXPECT_EQ(r.kind, FrameEndpoint::Received::Kind::kFrame);
  EXPECT_EQ(r.length, 100u);
  const FrameEndpoint::Received r2 = e.receive(buf);  // the next frame is whole
  EXPECT_EQ(r2.length, 40u);
  b.reset();
  EXPECT_EQ(e.receive(buf).kind, FrameEndpoint::Received::Kind::kClosed);
  EXPECT_EQ(e.send(f1), EPIPE);  // and no SIGPIPE
}

TEST(FrameEndpoint, ADatagramSocketShutDownReadsAsClosed) {
  auto [a, b] = pair_of(SOCK_DGRAM);
  FrameEndpoint e = FrameEndpoint::adopt(a.get());
  ::shutdown(a.get(), SHUT_RDWR);
  std::vector<uint8_t> buf(64);
  EXPECT_EQ(e.receive(buf).kind, FrameEndpoint::Received::Kind::kClosed);
}

TEST(FrameEndpoint, TapNamesAndNamespacesAreChecked) {
  EXPECT_THROW(FrameEndpoint::open_tap(""), ConfigError);
  EXPECT_THROW(FrameEndpoint::open_tap(std::string(kMaxTapName + 1, 't')), ConfigError);
  EXPECT_THROW(FrameEndpoint::open_tap("a/b"), ConfigError);
  // A namespace that does not exist fails before anything else, naming the TAP and the path.
  try {
    FrameEndpoint::open_tap("fvtest0", "/nonexistent/netns/x");
    FAIL() << "opened a TAP in a missing namespace";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("fvtest0"), std::string::npos) << m;
    EXPECT_NE(m.find("/nonexistent/netns/x"), std::string::npos) << m;
    EXPECT_NE(m.find("No such file"), std::string::npos) << m;
  }
}

TEST(FrameEndpoint, OpensARealTapWhenTheHostAllows) {
  std::optional<FrameEndpoint> tap;
  try {
    tap.emplace(FrameEndpoint::open_tap("fvunit" + std::to_string(::getpid() % 100000)));
  } catch (const Error& e) {
    GTEST_SKIP() << "no TAP here (needs /dev/net/tun and CAP_NET_ADMIN): " << e.what();
  }
  EXPECT_FALSE(tap->is_socket());
  EXPECT_NE(tap->description().find("tap 'fvunit"), std::string::npos);
  // Opened with a virtio-net header, so its offloads can be set and a device on it offers them.
  EXPECT_TRUE(tap->vnet_header());
  EXPECT_EQ(tap->set_offloads(TUN_F_CSUM | TUN_F_TSO4), 0);
  EXPECT_EQ(tap->set_offloads(0), 0);
  // The interface is down: nothing to read.
  std::vector<uint8_t> buf(2048);
  EXPECT_NE(tap->receive(buf).kind, FrameEndpoint::Received::Kind::kFrame);
  // Through a namespace path (this process's own, so the host is left as it was): the open
  // runs on a thread that enters it, and the caller's namespace does not change.
  const std::string before = std::filesystem::read_symlink("/proc/thread-self/ns/net");
  try {
    FrameEndpoint in_ns = FrameEndpoint::open_tap("fvns" + std::to_string(::getpid() % 100000),
                                                  "/proc/self/ns/net");
    EXPECT_NE(in_ns.description().find("in /proc/self/ns/net"), std::string::npos);
  } catch (const Error& e) {
    GTEST_SKIP() << "setns not allowed here: " << e.what();
  }
  EXPECT_EQ(std::filesystem::read_symlink("/proc/thread-self/ns/net"), before);
  // A TAP descriptor opened elsewhere is adopted (a duplicate), and checked to be a TAP with
  // IFF_NO_PI.
  FrameEndpoint adopted = FrameEndpoint::adopt(tap->fd());
  EXPECT_FALSE(adopted.is_socket());
  EXPECT_TRUE(adopted.vnet_header());
  const uint64_t features = NetDevice(std::move(adopted), {}).device_features();
  EXPECT_EQ(features & virtio_net::feature::kOffloads, virtio_net::feature::kOffloads);
}

}  // namespace
}  // namespace forkvm
