// VsockDevice across snapshot/restore, through a real VirtioMmioTransport: the test plays the
// guest driver (FakeDriver) and host programs on Unix sockets. The VM being captured keeps its
// host connections and is told nothing. A restored VM takes over the connections the capture
// carried (a socket pair per connection, credit counters kept) and gets an RST for every other
// one; one restored from a snapshot without the connection table (made before it existed) gets
// TRANSPORT_RESET (Firecracker's §3.6 list: RX held until the guest handled the reset, the
// local-port cursor kept, every queue re-kicked, new CONNECTs served).
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

#include "devices/virtio/mmio_transport.hpp"
#include "devices/virtio/mmio_transport_state.hpp"
#include "devices/virtio/vsock/vsock_device.hpp"
#include "devices/virtio/vsock/vsock_state.hpp"
#include "forkvm/errors.hpp"
#include "tests/support/state_codec_checks.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/vsock/fake_driver.hpp"
#include "tests/unit/vsock/host_socket.hpp"

namespace forkvm::vsock {
namespace {

using namespace std::chrono_literals;
using testing::FakeDriver;
using testing::host_read_line;
using testing::host_sees_close;
using testing::host_write;
using test::TempDir;
namespace reg = virtio_mmio;
namespace st = virtio_status;

Fd unix_socket(const std::string& path, bool listen) {
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  auto* sa = reinterpret_cast<sockaddr*>(&a);
  if (listen) {
    if (::bind(s.get(), sa, sizeof(a)) != 0 || ::listen(s.get(), 8) != 0) return Fd();
  } else if (::connect(s.get(), sa, sizeof(a)) != 0) {
    return Fd();
  }
  timeval tv{5, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return s;
}

// Whether EOF or a reset comes within `wait` (without consuming data: MSG_PEEK).
bool host_sees_close_within(const Fd& s, std::chrono::milliseconds wait) {
  pollfd p{s.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return false;
  char c;
  const ssize_t n = ::recv(s.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

/// One VM's vsock: a device on `uds` behind a transport over the driver's memory.
struct VsockSlot {
  VsockSlot(FakeDriver& d, const std::string& uds)
      : device(std::make_shared<VsockDevice>(FakeDriver::kGuestCid, uds)),
        transport(device, d.mem(), d.trigger()) {
    d.redirect_notifications(transport.queue_event(0), transport.queue_event(1),
                             transport.queue_event(2));
  }
  void w(uint64_t offset, uint32_t value) {
    std::array<uint8_t, 4> b;
    std::memcpy(b.data(), &value, 4);
    transport.write(offset, b);
  }
  /// Linux's probe: handshake, three queues, DRIVER_OK.
  void bring_up() {
    w(reg::kStatus, st::kAcknowledge);
    w(reg::kStatus, st::kAcknowledge | st::kDriver);
    w(reg::kDriverFeaturesSel, 0);
    w(reg::kDriverFeatures, static_cast<uint32_t>(feature::kStream));
    w(reg::kDriverFeaturesSel, 1);
    w(reg::kDriverFeatures, 1);  // VERSION_1
    w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk);
    for (uint16_t q = 0; q < 3; ++q) {
      w(reg::kQueueSel, q);
      w(reg::kQueueNum, FakeDriver::kSize);
      w(reg::kQueueDescLow, static_cast<uint32_t>(FakeDriver::desc(q)));
      w(reg::kQueueDriverLow, static_cast<uint32_t>(FakeDriver::avail(q)));
      w(reg::kQueueDeviceLow, static_cast<uint32_t>(FakeDriver::used(q)));
      w(reg::kQueueReady, 1);
    }
    w(reg::kStatus, st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk);
  }

  std::shared_ptr<VsockDevice> device;
  VirtioMmioTransport transport;
};

class VsockSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uds_ = (dir_ / "v.sock");
    vm_ = std::make_unique<VsockSlot>(driver_, uds_);
    driver_.post_rx(16);
    driver_.post_event(4);
    vm_->bring_up();
    ASSERT_TRUE(vm_->transport.activated());
  }

  /// Host CONNECT to guest `port` on `uds`, guest accepts; returns socket and local port.
  std::pair<Fd, uint32_t> host_initiated(const std::string& uds, uint32_t port) {
    Fd s = unix_socket(uds, false);
    EXPECT_TRUE(s);
    host_write(s, "CONNECT " + std::to_string(port) + "\n");
    auto req = driver_.recv();
    EXPECT_TRUE(req);
    if (!req) return {Fd(), 0};
    EXPECT_EQ(req->header.op, op::kRequest);
    EXPECT_TRUE(driver_.send(FakeDriver::from_guest(op::kResponse, port, req->header.src_port)));
    EXPECT_EQ(host_read_line(s), "OK " + std::to_string(req->header.src_port) + "\n");
    return {std::move(s), req->header.src_port};
  }

  /// Snapshot steps 1-2: quiesce, then the device and transport states through JSON. The
  /// connections to guest ports in `carry` are carried; `legacy` drops the connection table,
  /// as in a snapshot made before it existed.
  std::pair<VirtioMmioTransport::State, VsockDevice::State> snapshot(
      std::vector<VsockMuxer::CarryPort> carry = {}, bool legacy = false) {
    vm_->transport.quiesce();
    const auto ts = vm_->transport.save_state();
    auto vs = vm_->device->save_state(carry);
    EXPECT_TRUE(vs.connections_listed);
    if (legacy) {
      vs.connections_listed = false;
      vs.carried.clear();
      vs.stale.clear();
    }
    const auto ts2 = mmio_transport_state_from_json(
        nlohmann::json::parse(to_json(ts).dump()), "virtio-mmio[vsock]");
    const auto vs2 = vsock_state_from_json(nlohmann::json::parse(to_json(vs).dump()));
    EXPECT_EQ(ts2, ts);
    EXPECT_EQ(vs2, vs);
    return {ts2, vs2};
  }

  /// The original VM goes away and a fresh one (its own socket path `uds`, as a fork) is
  /// restored from the captured states.
  void restore_as_new_vm(const VirtioMmioTransport::State& ts, const VsockDevice::State& vs,
                         const std::string& uds) {
    vm_.reset();
    vm_ = std::make_unique<VsockSlot>(driver_, uds);
    vm_->device->restore_state(vs);
    vm_->transport.restore_state(ts);
  }

  TempDir dir_;
  std::string uds_;
  FakeDriver driver_;
  std::unique_ptr<VsockSlot> vm_;
};

TEST_F(VsockSnapshotTest, TheCapturedVmKeepsItsConnectionsAndIsToldNothing) {
  auto [sock, local] = host_initiated(uds_, 60);
  const int irqs_before = driver_.interrupts();
  auto [ts, vs] = snapshot();
  // Nothing posted, nothing armed, no interrupt: the saved event ring is untouched.
  EXPECT_FALSE(driver_.recv_event(0ms)) << "the captured VM got an event";
  EXPECT_EQ(driver_.interrupts(), irqs_before);
  EXPECT_FALSE(vs.reset_pending);
  EXPECT_EQ(ts.queues[2].queue.next_used, 0);
  EXPECT_EQ(vs.next_local_port, local + 1);
  // Bytes the host sends while the device is stopped wait in the socket.
  host_write(sock, "sent while paused");
  vm_->transport.resume();
  auto data = driver_.recv();
  ASSERT_TRUE(data);
  EXPECT_EQ(data->header.op, op::kRw);
  EXPECT_EQ(data->header.src_port, local);
  EXPECT_EQ(std::string(data->payload.begin(), data->payload.end()), "sent while paused");
  // The guest's side of the same connection still reaches the same host socket.
  auto rw = FakeDriver::from_guest(op::kRw, 60, local);
  const std::string reply = "guest reply";
  ASSERT_TRUE(driver_.send(rw, std::span(reinterpret_cast<const uint8_t*>(reply.data()),
                                         reply.size())));
  char buf[32] = {};
  ASSERT_EQ(::recv(sock.get(), buf, sizeof buf, 0), static_cast<ssize_t>(reply.size()));
  EXPECT_EQ(std::string(buf, reply.size()), reply);
  // A new CONNECT is served at once (no gate), with the next local port; and again after a
  // second cycle.
  Fd host = unix_socket(uds_, false);
  host_write(host, "CONNECT 61\n");
  auto req = driver_.recv();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->header.op, op::kRequest);
  EXPECT_EQ(req->header.src_port, local + 1);
  auto [ts2, vs2] = snapshot();
  EXPECT_FALSE(vs2.reset_pending);
  EXPECT_EQ(ts2.queues[2].queue.next_used, 0);
  vm_->transport.resume();
  host_write(sock, "after the second");
  data = driver_.recv();
  ASSERT_TRUE(data);
  EXPECT_EQ(std::string(data->payload.begin(), data->payload.end()), "after the second");
}

TEST_F(VsockSnapshotTest, ALegacyRestoredVmGetsTheResetAndServesNewConnectsAfterIt) {
  auto [old_sock, old_local] = host_initiated(uds_, 52);
  auto [ts, vs] = snapshot({}, true);
  EXPECT_FALSE(host_sees_close_within(old_sock, 200ms)) << "the captured VM lost its connection";

  const std::string uds2 = (dir_ / "w.sock");
  Fd guest_target = unix_socket(uds2 + "_5000", true);
  // While paused the guest queued a REQUEST whose notification nobody saw: the re-kick must
  // make the restored device take it.
  driver_.send_nowait(FakeDriver::from_guest(op::kRequest, 700, 5000));
  const int irqs_before = driver_.interrupts();
  restore_as_new_vm(ts, vs, uds2);
  EXPECT_TRUE(host_sees_close(old_sock)) << "the original VM went away";
  EXPECT_TRUE(vm_->transport.activated()) << "DRIVER_OK re-activated without a handshake";
  // TRANSPORT_RESET (id 0, 4 bytes) posted by the restored device, with an interrupt.
  auto ev = driver_.recv_event(0ms);
  ASSERT_TRUE(ev) << "no TRANSPORT_RESET in the restored VM's event queue";
  EXPECT_EQ(ev->first, VsockDevice::kEventTransportReset);
  EXPECT_EQ(ev->second, 4u);
  EXPECT_GT(driver_.interrupts(), irqs_before);
  EXPECT_TRUE(driver_.wait_tx_consumed()) << "TX queue not re-kicked after restore";

  // RX is held until the guest has handled the reset...
  Fd host = unix_socket(uds2, false);
  ASSERT_TRUE(host);
  host_write(host, "CONNECT 53\n");
  EXPECT_FALSE(driver_.recv(300ms)) << "RX delivered before the guest handled TRANSPORT_RESET";
  // ...then flows: the RESPONSE for the queued REQUEST and the new host CONNECT.
  driver_.ack_event();
  bool saw_response = false;
  bool saw_request = false;
  for (int i = 0; i < 2; ++i) {
    auto p = driver_.recv();
    ASSERT_TRUE(p);
    if (p->header.op == op::kResponse) {
      saw_response = p->header.src_port == 5000 && p->header.dst_port == 700;
    } else if (p->header.op == op::kRequest) {
      saw_request = p->header.dst_port == 53;
      EXPECT_EQ(p->header.src_port, vs.next_local_port) << "local port reused after restore";
      ASSERT_TRUE(
          driver_.send(FakeDriver::from_guest(op::kResponse, 53, p->header.src_port)));
      EXPECT_EQ(host_read_line(host), "OK " + std::to_string(p->header.src_port) + "\n");
    }
  }
  EXPECT_TRUE(saw_response);
  EXPECT_TRUE(saw_request);
  host_write(host, "after restore");
  auto data = driver_.recv();
  ASSERT_TRUE(data);
  EXPECT_EQ(data->header.op, op::kRw);
  EXPECT_EQ(std::string(data->payload.begin(), data->payload.end()), "after restore");
}

TEST_F(VsockSnapshotTest, TwoUnhandledResetsHoldRxUntilBothAreHandled) {
  // A restored VM captured again before its guest handled its reset (a fork of a fresh child):
  // the grandchild owes the guest a second one and waits for both.
  auto [ts, vs] = snapshot({}, true);
  restore_as_new_vm(ts, vs, dir_ / "c.sock");
  auto [ts2, vs2] = snapshot({}, true);
  EXPECT_TRUE(vs2.reset_pending);
  EXPECT_EQ(vs2.reset_events, 1u);
  const std::string uds3 = dir_ / "g.sock";
  restore_as_new_vm(ts2, vs2, uds3);
  EXPECT_EQ(vm_->device->reset_events_lost(), 0u);
  Fd host = unix_socket(uds3, false);
  host_write(host, "CONNECT 72\n");
  ASSERT_TRUE(driver_.recv_event());
  driver_.ack_event();
  EXPECT_FALSE(driver_.recv(300ms)) << "RX delivered between the two resets";
  ASSERT_TRUE(driver_.recv_event());
  driver_.ack_event();
  auto req = driver_.recv();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->header.op, op::kRequest);
}

TEST_F(VsockSnapshotTest, WithoutEventBuffersTheResetIsLost) {
  // Four generations restored from each other, none of whose guests answers, use up the
  // driver's four event buffers; the fifth cannot be told.
  for (int i = 0; i < 4; ++i) {
    auto [ts, vs] = snapshot({}, true);
    restore_as_new_vm(ts, vs, dir_ / ("gen" + std::to_string(i) + ".sock"));
    EXPECT_EQ(vm_->device->reset_events_lost(), 0u) << i;
  }
  auto [ts, vs] = snapshot({}, true);
  EXPECT_EQ(vs.reset_events, 4u);
  const std::string uds5 = dir_ / "gen4.sock";
  restore_as_new_vm(ts, vs, uds5);
  EXPECT_EQ(vm_->device->reset_events_lost(), 1u);
  // The four earlier resets are still unhandled: RX stays held until the guest has handled
  // them one by one, re-posting each buffer (as Linux's event loop does).
  Fd host = unix_socket(uds5, false);
  host_write(host, "CONNECT 70\n");
  EXPECT_FALSE(driver_.recv(300ms));
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(driver_.recv_event()) << i;
    driver_.ack_event();
    if (i < 3) {
      EXPECT_FALSE(driver_.recv(200ms)) << "RX delivered with " << 3 - i << " resets unhandled";
    }
  }
  auto req = driver_.recv();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->header.op, op::kRequest);
}

TEST(VsockSnapshot, DriverWithoutEventBuffersGetsNoGate) {
  TempDir dir;
  FakeDriver driver;
  auto vm = std::make_unique<VsockSlot>(driver, (dir / "v.sock"));
  driver.post_rx(4);
  vm->bring_up();
  vm->transport.quiesce();
  const auto ts = vm->transport.save_state();
  auto vs = vm->device->save_state();
  vs.connections_listed = false;  // a snapshot from before the connection table
  vm.reset();
  vm = std::make_unique<VsockSlot>(driver, (dir / "w.sock"));
  vm->device->restore_state(vs);
  vm->transport.restore_state(ts);
  EXPECT_EQ(vm->device->reset_events_lost(), 1u);
  vm->transport.quiesce();
  EXPECT_FALSE(vm->device->save_state().reset_pending);
  vm->transport.resume();
  Fd host = unix_socket((dir / "w.sock"), false);
  host_write(host, "CONNECT 71\n");
  auto req = driver.recv();
  ASSERT_TRUE(req) << "RX held for a reset that was never posted";
  EXPECT_EQ(req->header.op, op::kRequest);
}

TEST_F(VsockSnapshotTest, ACarriedConnectionGoesOnInTheRestoredVmAndTheOthersGetAnRst) {
  auto [kept_sock, kept_local] = host_initiated(uds_, 52);
  auto [other_sock, other_local] = host_initiated(uds_, 53);
  // Traffic both ways first, so that the carried credit counters are not all zero.
  host_write(kept_sock, "to the guest");
  auto first = driver_.recv();
  ASSERT_TRUE(first);
  const std::string reply = "from the guest";
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 52, kept_local, 65536, 12),
                           std::span(reinterpret_cast<const uint8_t*>(reply.data()), reply.size())));
  char buf[64] = {};
  ASSERT_EQ(::recv(kept_sock.get(), buf, sizeof buf, 0), static_cast<ssize_t>(reply.size()));

  auto [ts, vs] = snapshot({{52, 77}});
  ASSERT_EQ(vs.carried.size(), 1u);
  EXPECT_EQ(vs.carried[0].tag, 77u);
  EXPECT_EQ(vs.carried[0].local_port, kept_local);
  EXPECT_EQ(vs.carried[0].peer_port, 52u);
  EXPECT_EQ(vs.carried[0].tx_cnt, 12u);
  EXPECT_EQ(vs.carried[0].fwd_cnt, reply.size());
  EXPECT_EQ(vs.carried[0].peer_fwd_cnt, 12u);
  ASSERT_EQ(vs.stale.size(), 1u);
  EXPECT_EQ(vs.stale[0], std::make_pair(other_local, 53u));
  EXPECT_FALSE(host_sees_close_within(kept_sock, 100ms)) << "the captured VM lost its connection";

  const std::string uds2 = (dir_ / "child.sock");
  restore_as_new_vm(ts, vs, uds2);
  EXPECT_TRUE(host_sees_close(kept_sock)) << "the original VM went away";
  EXPECT_EQ(vm_->device->guest_cid(), vs.guest_cid) << "the guest keeps its CID";
  EXPECT_FALSE(driver_.recv_event(0ms)) << "a TRANSPORT_RESET with a connection table";
  // The stale connection's RST is the first packet the guest sees.
  auto rst = driver_.recv();
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->header.op, op::kRst);
  EXPECT_EQ(rst->header.src_port, other_local);
  EXPECT_EQ(rst->header.dst_port, 53u);

  VsockDevice::Taken taken = vm_->device->take_connection(52);
  Fd carried = std::move(taken.fd);
  ASSERT_TRUE(carried) << "no host end for the carried connection";
  EXPECT_EQ(taken.tag, 77u);
  EXPECT_FALSE(vm_->device->take_connection(52).fd) << "handed out twice";
  EXPECT_FALSE(vm_->device->take_connection(53).fd) << "a stale connection handed out";
  timeval tv{5, 0};
  ::setsockopt(carried.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  // Host -> guest on the same connection, counters going on from the capture's.
  host_write(carried, "child");
  auto data = driver_.recv();
  ASSERT_TRUE(data);
  EXPECT_EQ(data->header.op, op::kRw);
  EXPECT_EQ(data->header.src_port, kept_local);
  EXPECT_EQ(data->header.dst_port, 52u);
  EXPECT_EQ(data->header.fwd_cnt, reply.size());
  EXPECT_EQ(std::string(data->payload.begin(), data->payload.end()), "child");
  // Guest -> host: counted from the carried credit (fwd_cnt 12 + 5 acknowledged).
  const std::string back = "child reply";
  ASSERT_TRUE(driver_.send(FakeDriver::from_guest(op::kRw, 52, kept_local, 65536, 17),
                           std::span(reinterpret_cast<const uint8_t*>(back.data()), back.size())));
  ASSERT_EQ(::recv(carried.get(), buf, sizeof buf, 0), static_cast<ssize_t>(back.size()));
  EXPECT_EQ(std::string(buf, back.size()), back);
  // New CONNECTs are served at once, with the next local port.
  Fd host = unix_socket(uds2, false);
  host_write(host, "CONNECT 54\n");
  auto req = driver_.recv();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->header.op, op::kRequest);
  EXPECT_EQ(req->header.src_port, vs.next_local_port);
  // Closing the carried host end closes the connection as any host program's close would.
  carried.reset();
  auto shut = driver_.recv();
  ASSERT_TRUE(shut);
  EXPECT_EQ(shut->header.op, op::kShutdown);
  EXPECT_EQ(shut->header.src_port, kept_local);
}

TEST_F(VsockSnapshotTest, AConnectionTheGuestHalfClosedIsNotCarried) {
  auto [sock, local] = host_initiated(uds_, 52);
  // The guest shut its sending side: not a connection a copy can go on with.
  Header shut = FakeDriver::from_guest(op::kShutdown, 52, local);
  shut.flags = shutdown::kSend;
  ASSERT_TRUE(driver_.send(shut));
  auto [ts, vs] = snapshot({{52, 1}});
  EXPECT_TRUE(vs.carried.empty());
  ASSERT_EQ(vs.stale.size(), 1u);
  vm_->transport.resume();
}

TEST_F(VsockSnapshotTest, AConnectionWithHostBytesUnreadIsNotCarried) {
  auto [sock, local] = host_initiated(uds_, 52);
  vm_->transport.quiesce();
  // Written while the device is stopped: part of a message may be in the guest, the rest here.
  host_write(sock, "half a message");
  const auto vs = vm_->device->save_state(std::vector<VsockMuxer::CarryPort>{{52, 1}});
  EXPECT_TRUE(vs.carried.empty());
  ASSERT_EQ(vs.stale.size(), 1u);
  EXPECT_EQ(vs.stale[0], std::make_pair(local, 52u));
  vm_->transport.resume();
  auto data = driver_.recv();
  ASSERT_TRUE(data) << "the captured VM lost the bytes";
  EXPECT_EQ(std::string(data->payload.begin(), data->payload.end()), "half a message");
}

TEST_F(VsockSnapshotTest, SaveNeedsQuiesceAndRestoreNeedsAnIdleDevice) {
  EXPECT_THROW(vm_->device->save_state(), SnapshotError);
  EXPECT_THROW(vm_->transport.save_state(), SnapshotError);
  VsockDevice::State s;
  s.guest_cid = 3;
  s.next_local_port = 1u << 30;
  EXPECT_THROW(vm_->device->restore_state(s), SnapshotError);
}

TEST(VsockState, RestoreSaveIdenticalAndEveryMalformedFieldIsRefused) {
  TempDir dir;
  VsockDevice dev(7, (dir / "v.sock"));
  VsockDevice::State s;
  s.guest_cid = 7;
  s.next_local_port = (1u << 30) + 5;
  s.reset_pending = true;
  s.reset_event_avail = 9;
  s.reset_events = 2;
  dev.restore_state(s);
  EXPECT_EQ(dev.save_state(), s);
  const nlohmann::json good = to_json(s);
  EXPECT_EQ(vsock_state_from_json(good), s);
  test::expect_every_field_checked(good, vsock_state_from_json, "vsock");
  for (const nlohmann::json& cid : {nlohmann::json(0), nlohmann::json(2),
                                    nlohmann::json(0xFFFFFFFFull), nlohmann::json(1ull << 32)}) {
    test::expect_rejected(good, vsock_state_from_json, "guest_cid", cid);
  }
  test::expect_rejected(good, vsock_state_from_json, "next_local_port", (1u << 30) - 1);
  test::expect_rejected(good, vsock_state_from_json, "next_local_port", 1u << 31);
  test::expect_rejected(good, vsock_state_from_json, "reset_event_avail", 65536);
  test::expect_rejected(good, vsock_state_from_json, "reset_pending", "true");
  test::expect_rejected(good, vsock_state_from_json, "reset_events", 65536);
  test::expect_rejected(good, vsock_state_from_json, "reset_events", 0);  // pending, none counted
  nlohmann::json bad = good;
  bad["reset_pending"] = false;  // a marker without a pending reset
  EXPECT_THROW(vsock_state_from_json(bad), SnapshotError);
  VsockDevice::State zero_count = s;
  zero_count.reset_events = 0;
  EXPECT_THROW(dev.restore_state(zero_count), SnapshotError);
  VsockDevice::State direct = s;
  direct.next_local_port = 5;
  EXPECT_THROW(dev.restore_state(direct), SnapshotError);
}

TEST(VsockState, TheConnectionTableRoundTripsAndBadTablesAreRefused) {
  TempDir dir;
  VsockDevice::State s;
  s.guest_cid = 9;
  s.next_local_port = (1u << 30) + 2;
  s.connections_listed = true;
  s.carried.push_back({(1u << 30) + 1, 1024, 100, 90, 7, 65536, 7, true, 42});
  s.stale.emplace_back(1u << 30, 1025);
  s.stale.emplace_back(5000, 49152);
  {
    VsockDevice dev(3, (dir / "a.sock"));
    dev.restore_state(s);
    EXPECT_EQ(dev.guest_cid(), 9u) << "a listed table keeps the snapshot's CID";
    EXPECT_EQ(dev.save_state(), s);
    VsockDevice::Taken host = dev.take_connection(1024);
    EXPECT_TRUE(host.fd);
    EXPECT_EQ(host.tag, 42u);
  }
  const nlohmann::json good = to_json(s);
  EXPECT_EQ(vsock_state_from_json(good), s);
  for (const char* field : {"local_port", "peer_port", "fwd_cnt", "advertised_fwd", "tx_cnt",
                            "peer_buf_alloc", "peer_fwd_cnt", "tag"}) {
    nlohmann::json bad = good;
    bad["connections"]["carried"][0][field] = 1ull << 32;
    EXPECT_THROW(vsock_state_from_json(bad), SnapshotError) << field;
    bad["connections"]["carried"][0].erase(field);
    EXPECT_THROW(vsock_state_from_json(bad), SnapshotError) << field;
  }
  for (const nlohmann::json& pair :
       {nlohmann::json::array({1}), nlohmann::json::array({1, 2, 3}), nlohmann::json(5),
        nlohmann::json::array({-1, 2}), nlohmann::json::array({1, 1ull << 32}),
        nlohmann::json::array({"1", 2})}) {
    nlohmann::json bad = good;
    bad["connections"]["stale"][0] = pair;
    EXPECT_THROW(vsock_state_from_json(bad), SnapshotError) << pair.dump();
  }
  nlohmann::json extra = good;
  extra["connections"]["more"] = 1;
  EXPECT_THROW(vsock_state_from_json(extra), SnapshotError);
  nlohmann::json huge = good;
  huge["connections"]["stale"] = nlohmann::json::array();
  for (size_t i = 0; i <= VsockDevice::kMaxListedConnections; ++i) {
    huge["connections"]["stale"].push_back({5000, i});
  }
  EXPECT_THROW(vsock_state_from_json(huge), SnapshotError);

  auto refused = [&](const VsockDevice::State& bad, const char* why) {
    VsockDevice dev(3, (dir / "b.sock"));
    EXPECT_THROW(dev.restore_state(bad), SnapshotError) << why;
  };
  VsockDevice::State twice = s;
  twice.stale.emplace_back(s.carried[0].local_port, s.carried[0].peer_port);
  refused(twice, "a connection listed twice");
  VsockDevice::State ahead = s;
  ahead.carried[0].advertised_fwd = ahead.carried[0].fwd_cnt - Connection::kBufAlloc - 1;
  refused(ahead, "fwd_cnt beyond the buffer the guest was told");
  VsockDevice::State with_reset = s;
  with_reset.reset_pending = true;
  with_reset.reset_events = 1;
  refused(with_reset, "carried connections with a TRANSPORT_RESET pending");
  VsockDevice::State unlisted = s;
  unlisted.connections_listed = false;
  refused(unlisted, "connections without the listed flag");
  VsockDevice::State many = s;
  many.stale.clear();
  for (uint32_t i = 0; i < VsockDevice::kMaxListedConnections; ++i) many.stale.emplace_back(7, i);
  refused(many, "more connections than the table holds");
}

}  // namespace
}  // namespace forkvm::vsock
