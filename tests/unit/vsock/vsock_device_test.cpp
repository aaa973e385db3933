// VsockDevice end to end without KVM: the test plays the guest driver (FakeDriver) on one side
// and host programs on real Unix sockets on the other.
#include "devices/virtio/vsock/vsock_device.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>

#include "devices/virtio/vsock/connection.hpp"
#include "devices/virtio/vsock/vsock_error.hpp"
#include "forkvm/errors.hpp"
#include "tests/unit/vsock/fake_driver.hpp"
#include "tests/unit/vsock/host_socket.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::vsock {
namespace {

using namespace std::chrono_literals;
using testing::FakeDriver;
using testing::host_read_line;
using testing::host_sees_close;
using testing::host_write;
using testing::Received;
using test::TempDir;

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string text(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// A host program's blocking socket with a 5 s receive timeout.
Fd host_connect(const std::string& path) {
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return Fd();
  timeval tv{5, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return s;
}

Fd host_listen(const std::string& path) {
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  EXPECT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(::listen(s.get(), 8), 0);
  return s;
}

Fd host_accept(const Fd& listener) {
  pollfd p{listener.get(), POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return Fd();
  Fd s(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  timeval tv{5, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return s;
}

// Reads exactly n bytes (or fewer at EOF / timeout).
std::string host_read(const Fd& s, size_t n) {
  std::string out;
  while (out.size() < n) {
    char buf[65536];
    const ssize_t r = ::recv(s.get(), buf, std::min(sizeof(buf), n - out.size()), 0);
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

// True when the host socket reports end of stream (recv() == 0) within the timeout.
bool host_sees_eof(const Fd& s) {
  char c;
  return ::recv(s.get(), &c, 1, 0) == 0;
}

class VsockDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uds_ = (dir_ / "v.sock");
    dev_ = std::make_unique<VsockDevice>(FakeDriver::kGuestCid, uds_);
    driver_.post_rx(16);
    dev_->activate(driver_.activation());
  }
  void TearDown() override {
    const auto start = std::chrono::steady_clock::now();
    dev_.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "destructor hung";
  }

  Received expect_packet(uint16_t operation) {
    auto r = driver_.recv();
    EXPECT_TRUE(r) << "no RX packet, wanted op " << operation;
    if (!r) return {};
    EXPECT_EQ(r->header.op, operation);
    EXPECT_EQ(r->header.src_cid, kHostCid);
    EXPECT_EQ(r->header.dst_cid, FakeDriver::kGuestCid);
    EXPECT_EQ(r->header.type, type::kStream);
    EXPECT_EQ(r->used_len, kHeaderBytes + r->payload.size());
    EXPECT_EQ(r->header.len, r->payload.size());
    return *r;
  }

  // Host program connects to guest port `port`; the guest accepts. Returns the host socket
  // and the device's local port.
  std::pair<Fd, uint32_t> host_initiated(uint32_t port) {
    Fd s = host_connect(uds_);
    EXPECT_TRUE(s);
    host_write(s, "CONNECT " + std::to_string(port) + "\n");
    const Received req = expect_packet(op::kRequest);
    EXPECT_EQ(req.header.dst_port, port);
    EXPECT_GE(req.header.src_port, 1u << 30);
    EXPECT_TRUE(driver_.send(FakeDriver::from_guest(op::kResponse, port, req.header.src_port)));
    EXPECT_EQ(host_read_line(s), "OK " + std::to_string(req.header.src_port) + "\n");
    return {std::move(s), req.header.src_port};
  }

  TempDir dir_;
  std::string uds_;
  FakeDriver driver_;
  std::unique_ptr<VsockDevice> dev_;
};

TEST(VsockDeviceBasics, ConfigFeaturesAndQueues) {
  TempDir dir;
  VsockDevice dev(0x1'2345'6789ull & 0xFFFFFFFF, (dir / "v.sock"));
  EXPECT_EQ(dev.device_id(), 19u);
  EXPECT_EQ(dev.name(), "vsock");
  EXPECT_TRUE(dev.device_features() & virtio_feature::kVersion1);
  EXPECT_FALSE(dev.device_features() & feature::kSeqpacket);
  EXPECT_EQ(dev.queue_max_sizes(), (std::vector<uint16_t>{256, 256, 256}));
  uint8_t cfg[12];
  std::memset(cfg, 0xEE, sizeof(cfg));
  dev.read_config(0, cfg);
  EXPECT_EQ(cfg[0], 0x89);
  EXPECT_EQ(cfg[3], 0x23);
  EXPECT_EQ(cfg[4], 0x00);  // upper 32 bits zero
  EXPECT_EQ(cfg[8], 0xEE);  // past the 8-byte config: untouched
  uint8_t hi[4] = {0xEE, 0xEE, 0xEE, 0xEE};
  dev.read_config(2, std::span<uint8_t>(hi, 2));
  EXPECT_EQ(hi[0], 0x45);
  dev.read_config(UINT64_MAX, hi);  // no overflow, nothing written
  EXPECT_EQ(hi[2], 0xEE);
}

TEST(VsockDeviceBasics, RejectsReservedCidsAndBusyPaths) {
  TempDir dir;
  EXPECT_THROW(VsockDevice(2, (dir / "a.sock")), ConfigError);
  EXPECT_THROW(VsockDevice(1ull << 32, (dir / "a.sock")), ConfigError);
  VsockDevice first(3, (dir / "a.sock"));
  try {
    VsockDevice second(4, (dir / "a.sock"));
    FAIL() << "a second device took a live socket path";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "a.sock")), std::string::npos);
  }
}

TEST(VsockDeviceBasics, ActivateRejectsWrongQueueCount) {
  TempDir dir;
  VsockDevice dev(3, (dir / "v.sock"));
  FakeDriver driver;
  VirtioActivation a = driver.activation();
  a.queues.pop_back();
  EXPECT_THROW(dev.activate(std::move(a)), VsockError);
}

TEST_F(VsockDeviceTest, HostInitiatedConnectOkAndDataBothWays) {
  auto [s, local] = host_initiated(52);
  host_write(s, "hello guest");
  Received d = expect_packet(op::kRw);
  EXPECT_EQ(text(d.payload), "hello guest");
  EXPECT_EQ(d.header.src_port, local);
  EXPECT_EQ(d.header.dst_port, 52u);
  EXPECT_EQ(d.header.buf_alloc, Connection::kBufAlloc);
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 52, local), bytes("hello host")));
  EXPECT_EQ(host_read(s, 10), "hello host");
  EXPECT_GT(driver_.interrupts(), 0);
  EXPECT_FALSE(driver_.needs_reset());
}

TEST_F(VsockDeviceTest, HostConnectRefusedByGuestClosesTheSocket) {
  Fd s = host_connect(uds_);
  host_write(s, "connect 7\n");
  const Received req = expect_packet(op::kRequest);
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRst, 7, req.header.src_port)));
  EXPECT_TRUE(host_sees_eof(s));
}

TEST_F(VsockDeviceTest, MalformedOrOverlongConnectLinesAreClosed) {
  Fd bad = host_connect(uds_);
  host_write(bad, "HELLO 52\n");
  EXPECT_TRUE(host_sees_eof(bad));
  Fd overlong = host_connect(uds_);
  host_write(overlong, "CONNECT " + std::string(40, '1'));
  EXPECT_TRUE(host_sees_close(overlong));
  EXPECT_FALSE(driver_.recv(200ms)) << "a malformed CONNECT reached the guest";
}

TEST_F(VsockDeviceTest, IncompleteConnectLineTimesOut) {
  Fd slow = host_connect(uds_);
  host_write(slow, "CONN");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(host_sees_eof(slow));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
}

TEST_F(VsockDeviceTest, GuestInitiatedConnectsToThePortSocket) {
  Fd listener = host_listen(uds_ + "_5000");
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRequest, 777, 5000)));
  Received resp = expect_packet(op::kResponse);
  EXPECT_EQ(resp.header.src_port, 5000u);
  EXPECT_EQ(resp.header.dst_port, 777u);
  Fd s = host_accept(listener);
  ASSERT_TRUE(s);
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 777, 5000), bytes("ping")));
  EXPECT_EQ(host_read(s, 4), "ping");
  host_write(s, "pong");
  EXPECT_EQ(text(expect_packet(op::kRw).payload), "pong");
}

TEST_F(VsockDeviceTest, GuestConnectWithoutListenerGetsRst) {
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRequest, 778, 5001)));
  Received rst = expect_packet(op::kRst);
  EXPECT_EQ(rst.header.src_port, 5001u);
  EXPECT_EQ(rst.header.dst_port, 778u);
}

TEST_F(VsockDeviceTest, ManyConcurrentConnections) {
  std::map<uint32_t, Fd> hosts;  // guest port -> host socket
  std::map<uint32_t, uint32_t> local_of;
  for (uint32_t p = 100; p < 108; ++p) {
    auto [s, local] = host_initiated(p);
    hosts[p] = std::move(s);
    local_of[p] = local;
  }
  std::set<uint32_t> locals;
  for (auto& [p, l] : local_of) locals.insert(l);
  EXPECT_EQ(locals.size(), 8u);
  for (auto& [p, s] : hosts) host_write(s, "to " + std::to_string(p));
  std::map<uint32_t, std::string> got;
  for (int i = 0; i < 8; ++i) {
    Received d = expect_packet(op::kRw);
    got[d.header.dst_port] += text(d.payload);
  }
  for (auto& [p, s] : hosts) EXPECT_EQ(got[p], "to " + std::to_string(p));
  for (auto& [p, s] : hosts) {
    ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, p, local_of[p]),
                             bytes("from " + std::to_string(p))));
  }
  for (auto& [p, s] : hosts) {
    const std::string want = "from " + std::to_string(p);
    EXPECT_EQ(host_read(s, want.size()), want);
  }
}

TEST_F(VsockDeviceTest, HostToGuestDataWaitsForCredit) {
  Fd listener = host_listen(uds_ + "_6000");
  // The guest advertises only 8 bytes of buffer.
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRequest, 900, 6000, 8, 0)));
  expect_packet(op::kResponse);
  Fd s = host_accept(listener);
  ASSERT_TRUE(s);
  host_write(s, "0123456789abcdefXYZW");
  EXPECT_EQ(text(expect_packet(op::kRw).payload), "01234567");
  EXPECT_FALSE(driver_.recv(300ms)) << "the device sent past the guest's credit";
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kCreditUpdate, 900, 6000, 8, 8)));
  EXPECT_EQ(text(expect_packet(op::kRw).payload), "89abcdef");
  EXPECT_FALSE(driver_.recv(200ms));
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kCreditUpdate, 900, 6000, 8, 16)));
  EXPECT_EQ(text(expect_packet(op::kRw).payload), "XYZW");
}

TEST_F(VsockDeviceTest, CreditRequestGetsAnUpdate) {
  auto [s, local] = host_initiated(53);
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kCreditRequest, 53, local)));
  Received u = expect_packet(op::kCreditUpdate);
  EXPECT_EQ(u.header.buf_alloc, Connection::kBufAlloc);
  EXPECT_EQ(u.header.fwd_cnt, 0u);
}

TEST_F(VsockDeviceTest, GuestDataUpdatesCreditAndTheHostGetsAllOfIt) {
  auto [s, local] = host_initiated(54);
  std::string all;
  const std::string chunk(4096, 'q');
  // 64 KiB, exactly the credit we advertised, then more once the updates arrive.
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 54, local), bytes(chunk)));
  }
  EXPECT_EQ(host_read(s, 65536).size(), 65536u);
  Received u = expect_packet(op::kCreditUpdate);  // proactive: the guest's view was 0
  EXPECT_EQ(u.header.fwd_cnt, 65536u);
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 54, local), bytes(chunk)));
  EXPECT_EQ(host_read(s, 4096), chunk);
  EXPECT_FALSE(driver_.needs_reset());
}

// Fresh fixture with a single RX buffer, so no credit update can reach the guest.
TEST(VsockDeviceCredit, GuestDataBeyondAdvertisedCreditIsRst) {
  TempDir dir;
  const std::string uds = (dir / "v.sock");
  Fd listener = host_listen(uds + "_7000");
  FakeDriver driver;
  VsockDevice dev(FakeDriver::kGuestCid, uds);
  driver.post_rx(1);
  dev.activate(driver.activation());
  ASSERT_TRUE(driver.send(FakeDriver::from_guest(op::kRequest, 1, 7000)));
  auto resp = driver.recv(5s, /*repost=*/false);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->header.op, op::kResponse);
  Fd s = host_accept(listener);
  ASSERT_TRUE(s);
  const std::string chunk(4096, 'c');
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(driver.send(FakeDriver::from_guest(op::kRw, 1, 7000), bytes(chunk)));
  }
  EXPECT_EQ(host_read(s, 65536).size(), 65536u);
  ASSERT_TRUE(driver.send(FakeDriver::from_guest(op::kRw, 1, 7000), bytes("x")));
  driver.post_rx(1);
  auto rst = driver.recv();
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->header.op, op::kRst);
  EXPECT_TRUE(host_sees_eof(s));
}

TEST_F(VsockDeviceTest, HalfCloseBothWaysThenFullClose) {
  auto [s, local] = host_initiated(55);
  ASSERT_EQ(::shutdown(s.get(), SHUT_WR), 0);
  Received sd = expect_packet(op::kShutdown);
  EXPECT_EQ(sd.header.flags, shutdown::kSend);
  // The guest can still send to the host.
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 55, local), bytes("late")));
  EXPECT_EQ(host_read(s, 4), "late");
  // The guest closes: the device answers with RST and the host sees EOF.
  Header full = FakeDriver::from_guest(op::kShutdown, 55, local);
  full.flags = shutdown::kBoth;
  ASSERT_TRUE(driver_.send(full));
  expect_packet(op::kRst);
  EXPECT_TRUE(host_sees_eof(s));
}

TEST_F(VsockDeviceTest, GuestHalfCloseReachesTheHostAsEof) {
  auto [s, local] = host_initiated(56);
  Header half = FakeDriver::from_guest(op::kShutdown, 56, local);
  half.flags = shutdown::kSend;
  ASSERT_TRUE(driver_.send(half));
  EXPECT_TRUE(host_sees_eof(s));
  host_write(s, "still open");  // our direction still works
  EXPECT_EQ(text(expect_packet(op::kRw).payload), "still open");
}

TEST_F(VsockDeviceTest, HostCloseSendsShutdownAndRstAfterTimeout) {
  auto [s, local] = host_initiated(57);
  s.reset();
  Received sd = expect_packet(op::kShutdown);
  EXPECT_EQ(sd.header.flags, shutdown::kBoth);
  // The guest never answers: the device gives up with RST after the shutdown timeout.
  auto rst = driver_.recv(Connection::kShutdownTimeout + 2s);
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->header.op, op::kRst);
  // The connection is gone: a packet for it is answered with RST.
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 57, local), bytes("?")));
  expect_packet(op::kRst);
}

TEST_F(VsockDeviceTest, BadHeadersAreRefusedWithoutHurtingTheDevice) {
  // Spoofed source CID: dropped silently.
  Header spoof = FakeDriver::from_guest(op::kRequest, 1, 5000);
  spoof.src_cid = 9;
  ASSERT_TRUE(driver_.send(spoof));
  EXPECT_FALSE(driver_.recv(200ms));
  EXPECT_EQ(dev_->refused_packets(), 1u);
  // Seqpacket: refused with an RST of the same type.
  Header seq = FakeDriver::from_guest(op::kRequest, 2, 5000);
  seq.type = type::kSeqpacket;
  ASSERT_TRUE(driver_.send(seq));
  auto r = driver_.recv();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header.op, op::kRst);
  EXPECT_EQ(r->header.type, type::kSeqpacket);
  // Unknown op.
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(42, 3, 5000)));
  expect_packet(op::kRst);
  // len past the end of the chain, and a huge len.
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 4, 5000), bytes("abc"), 4000u));
  expect_packet(op::kRst);
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 5, 5000), bytes("abc"), 0xFFFFFFFFu));
  expect_packet(op::kRst);
  // RW to a connection that does not exist.
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 6, 5000), bytes("abc")));
  expect_packet(op::kRst);
  // A truncated header: dropped.
  const uint8_t shortbuf[20] = {};
  ASSERT_TRUE(driver_.send_raw(shortbuf, {}));
  EXPECT_FALSE(driver_.recv(200ms));
  // An RST for nothing is never answered.
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRst, 7, 5000)));
  EXPECT_FALSE(driver_.recv(200ms));
  EXPECT_EQ(dev_->refused_packets(), 6u);
  EXPECT_FALSE(driver_.needs_reset());
  // Still serving.
  auto [s, local] = host_initiated(58);
  EXPECT_GE(local, 1u << 30);
}

TEST_F(VsockDeviceTest, RandomTxPacketsNeverBreakTheDevice) {
  std::mt19937 rng(1234);
  auto pick = [&rng](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  auto any32 = [&rng] { return static_cast<uint32_t>(rng()); };
  for (int i = 0; i < 300; ++i) {
    Header h;
    h.src_cid = pick(4) == 0 ? rng() : FakeDriver::kGuestCid;
    h.dst_cid = pick(4) == 0 ? rng() : kHostCid;
    h.src_port = pick(8);
    h.dst_port = pick(8);
    h.type = static_cast<uint16_t>(pick(4) == 0 ? pick(4) : type::kStream);
    h.op = static_cast<uint16_t>(pick(10));
    h.flags = any32();
    h.buf_alloc = any32();
    h.fwd_cnt = any32();
    std::vector<uint8_t> payload(pick(3) == 0 ? 0 : pick(200));
    for (auto& b : payload) b = static_cast<uint8_t>(any32());
    const std::optional<uint32_t> len =
        pick(3) == 0 ? std::optional<uint32_t>(pick(400)) : std::nullopt;
    ASSERT_TRUE(driver_.send(h, payload, len)) << "TX stalled at packet " << i;
    while (driver_.recv(0ms)) {
    }
  }
  EXPECT_FALSE(driver_.needs_reset()) << driver_.reset_reason();
  auto [s, local] = host_initiated(99);
  host_write(s, "alive");
  EXPECT_EQ(text(expect_packet(op::kRw).payload), "alive");
}

TEST_F(VsockDeviceTest, BadPacketOnALiveConnectionResetsOnlyThatConnection) {
  auto [a, la] = host_initiated(60);
  auto [b, lb] = host_initiated(61);
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 60, la), bytes("abc"), 9999u));
  expect_packet(op::kRst);
  EXPECT_TRUE(host_sees_eof(a));
  host_write(b, "b lives");
  EXPECT_EQ(text(expect_packet(op::kRw).payload), "b lives");
}

TEST_F(VsockDeviceTest, MalformedTxQueueNeedsReset) {
  driver_.send_bad_head();
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!driver_.needs_reset() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(driver_.needs_reset());
  EXPECT_NE(driver_.reset_reason().find("tx queue"), std::string::npos)
      << driver_.reset_reason();
  const auto start = std::chrono::steady_clock::now();
  dev_->reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  // The listener survives a reset: a new activation serves again.
  FakeDriver fresh;
  fresh.post_rx(4);
  dev_->activate(fresh.activation());
  Fd s = host_connect(uds_);
  host_write(s, "CONNECT 9\n");
  auto req = fresh.recv();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->header.op, op::kRequest);
  dev_->reset();
}

TEST(VsockDeviceLifecycle, ResetClosesConnectionsAndDestructorUnlinks) {
  TempDir dir;
  const std::string uds = (dir / "v.sock");
  FakeDriver driver;
  auto dev = std::make_unique<VsockDevice>(FakeDriver::kGuestCid, uds);
  driver.post_rx(4);
  dev->activate(driver.activation());
  Fd s = host_connect(uds);
  host_write(s, "CONNECT 1\n");
  auto req = driver.recv();
  ASSERT_TRUE(req);
  dev->reset();
  EXPECT_TRUE(host_sees_eof(s));
  dev.reset();
  EXPECT_FALSE(host_connect(uds));
  EXPECT_NE(::access(uds.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace forkvm::vsock
