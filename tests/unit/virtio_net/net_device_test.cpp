// unit tier: NetDevice driven through the real virtio-mmio transport and split queues over a
// fake guest memory, with a SOCK_SEQPACKET socketpair as its backend (a real frame endpoint,
// not a mock): frames both ways byte-exact, runts and oversized frames counted and never
// delivered, back-pressure when the guest posts no receive buffer, config space, quiesce and
// resume with nothing in flight, and hostile chains ending in DEVICE_NEEDS_RESET or a dropped
// chain, never a crash or a hang.
#include "devices/virtio/net/net_device.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <ctime>
#include <functional>
#include <set>
#include <thread>

#include "devices/virtio/queue_error.hpp"
#include "forkvm/errors.hpp"
#include "tests/unit/virtio_net/net_driver.hpp"

namespace forkvm {
namespace {

using namespace std::chrono_literals;
using testing::frame;
using testing::NetDriver;
namespace reg = virtio_mmio;
namespace st = virtio_status;

constexpr uint32_t kDriverOkStatus = st::kAcknowledge | st::kDriver | st::kFeaturesOk | st::kDriverOk;

/// One frame from the wire (waits up to 5 s); empty when none came.
std::vector<uint8_t> wire_recv(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return {};
  std::vector<uint8_t> buf(virtio_net::kMaxFrameBytes + 16);
  const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
  if (n < 0) return {};
  buf.resize(static_cast<size_t>(n));
  return buf;
}
/// Whether the wire has a frame waiting right now.
bool wire_has_frame(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}
void wire_send(int fd, const std::vector<uint8_t>& f) {
  ASSERT_EQ(::send(fd, f.data(), f.size(), MSG_NOSIGNAL), static_cast<ssize_t>(f.size()));
}
/// CPU time this process has used (every thread, the device's worker included).
std::chrono::nanoseconds process_cpu_time() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}
/// Whether the process (i.e. the idle device's worker) used little CPU over `window`: a worker
/// that spins would use about all of it.
bool stays_idle(std::chrono::milliseconds window) {
  const auto before = process_cpu_time();
  std::this_thread::sleep_for(window);
  return process_cpu_time() - before < window / 4;
}
bool eventually(const std::function<bool()>& done) {
  for (auto end = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < end;) {
    if (done()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return done();
}

TEST(NetDevice, ConfigSpaceAndFeaturesAsTheDriverSeesThem) {
  NetDriver drv({0x02, 0x11, 0x22, 0x33, 0x44, 0x55});
  EXPECT_EQ(drv.r(reg::kDeviceId), virtio_id::kNet);
  drv.w(reg::kDeviceFeaturesSel, 0);
  const uint32_t low = drv.r(reg::kDeviceFeatures);
  drv.w(reg::kDeviceFeaturesSel, 1);
  const uint32_t high = drv.r(reg::kDeviceFeatures);
  EXPECT_EQ((uint64_t{high} << 32) | low,
            virtio_feature::kVersion1 | virtio_net::feature::kMac | virtio_net::feature::kStatus);
  drv.w(reg::kQueueSel, 0);
  EXPECT_EQ(drv.r(reg::kQueueNumMax), NetDevice::kQueueSize);
  drv.w(reg::kQueueSel, 1);
  EXPECT_EQ(drv.r(reg::kQueueNumMax), NetDevice::kQueueSize);
  drv.w(reg::kQueueSel, 2);  // no control queue
  EXPECT_EQ(drv.r(reg::kQueueNumMax), 0u);
  // Config space as Linux reads it: the MAC byte by byte, then the 16-bit status.
  std::array<uint8_t, 6> mac{};
  for (size_t i = 0; i < 6; ++i) {
    std::array<uint8_t, 1> b{};
    drv.transport().read(reg::kConfig + i, b);
    mac[i] = b[0];
  }
  EXPECT_EQ(mac, (NetDevice::Mac{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}));
  std::array<uint8_t, 2> status{};
  drv.transport().read(reg::kConfig + 6, status);
  EXPECT_EQ(status[0] | (status[1] << 8), virtio_net::link_status::kLinkUp);
  // Guest-chosen offsets past the end or straddling it copy only what exists.
  std::array<uint8_t, 8> tail;
  tail.fill(0xee);
  drv.device().read_config(10, tail);
  EXPECT_EQ(tail[0] | (tail[1] << 8), 1500);  // mtu (not offered, but laid out)
  EXPECT_EQ(tail[2], 0xee);
  drv.device().read_config(UINT64_MAX, tail);
  drv.device().read_config(12, tail);
  EXPECT_EQ(tail[2], 0xee);
  // Config writes are ignored (no VIRTIO_NET_F_CTRL_MAC_ADDR).
  const std::array<uint8_t, 1> zero{0};
  drv.transport().write(reg::kConfig, zero);
  std::array<uint8_t, 1> first{};
  drv.transport().read(reg::kConfig, first);
  EXPECT_EQ(first[0], 0x02);
}

TEST(NetDevice, RandomMacIsLocallyAdministeredUnicastAndMulticastIsRefused) {
  std::set<NetDevice::Mac> seen;
  for (int i = 0; i < 32; ++i) {
    const NetDevice::Mac m = NetDevice::random_mac();
    EXPECT_EQ(m[0] & 0x01, 0) << NetDevice::mac_text(m);
    EXPECT_EQ(m[0] & 0x02, 0x02) << NetDevice::mac_text(m);
    seen.insert(m);
  }
  EXPECT_GT(seen.size(), 30u);
  NetDriver random(NetDevice::Mac{});  // all zeros: a random MAC
  EXPECT_EQ(random.device().mac()[0] & 0x03, 0x02);
  EXPECT_EQ(random.device().guest_mac(), random.device().mac());
  testing::FramePair pair;
  EXPECT_THROW(NetDevice(FrameEndpoint::adopt(pair.device.get()), {0x01, 0, 0x5e, 0, 0, 1}),
               ConfigError);
  EXPECT_EQ(NetDevice::mac_text({0x02, 0xab, 0, 0, 0, 0x0f}), "02:ab:00:00:00:0f");
}

TEST(NetDevice, TransmittedFramesReachTheWireWithoutTheHeader) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  const auto f1 = frame(60, 1);
  const auto f2 = frame(1514, 2);
  const uint16_t h1 = drv.send(f1, 0, false);
  EXPECT_EQ(wire_recv(drv.wire()), f1);
  const uint16_t h2 = drv.send(f2, 1, true);  // header and frame in separate descriptors
  EXPECT_EQ(wire_recv(drv.wire()), f2);
  ASSERT_TRUE(drv.wait_used(virtio_net::kTxQueue, 2));
  EXPECT_EQ(drv.used_elem(virtio_net::kTxQueue, 0), (std::pair<uint32_t, uint32_t>{h1, 0}));
  EXPECT_EQ(drv.used_elem(virtio_net::kTxQueue, 1), (std::pair<uint32_t, uint32_t>{h2, 0}));
  EXPECT_TRUE(eventually([&] { return drv.trigger().count.load() >= 1; }));
  const virtio_net::Counters c = drv.device().counters();
  EXPECT_EQ(c.tx_frames, 2u);
  EXPECT_EQ(c.tx_bytes, f1.size() + f2.size());
  EXPECT_EQ(c.tx_bad, 0u);
  EXPECT_FALSE(wire_has_frame(drv.wire()));
}

TEST(NetDevice, ReceivedFrameLandsAfterAZeroedHeaderWithOneBuffer) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  const uint64_t buf = NetDriver::rx_buffer(0);
  drv.mem().write(buf, std::vector<uint8_t>(virtio_net::kLinuxSmallRxBuffer, 0xee));
  const uint16_t head = drv.post_rx(static_cast<uint32_t>(virtio_net::kLinuxSmallRxBuffer), 0);
  const auto f = frame(98, 7);
  wire_send(drv.wire(), f);
  ASSERT_TRUE(drv.wait_used(virtio_net::kRxQueue, 1));
  EXPECT_EQ(drv.used_elem(virtio_net::kRxQueue, 0),
            (std::pair<uint32_t, uint32_t>{head, static_cast<uint32_t>(virtio_net::kHeaderBytes + f.size())}));
  std::vector<uint8_t> header(virtio_net::kHeaderBytes, 0);
  header[10] = 1;  // num_buffers = 1, little-endian
  EXPECT_EQ(drv.read(buf, virtio_net::kHeaderBytes), header);
  EXPECT_EQ(drv.read(buf + virtio_net::kHeaderBytes, f.size()), f);
  EXPECT_EQ(drv.read(buf + virtio_net::kHeaderBytes + f.size(), 1)[0], 0xee);  // nothing past it
  // The largest frame Linux's small buffer takes fits exactly.
  drv.post_rx(static_cast<uint32_t>(virtio_net::kLinuxSmallRxBuffer), 1);
  const auto big = frame(virtio_net::kLinuxSmallRxBuffer - virtio_net::kHeaderBytes, 8);
  wire_send(drv.wire(), big);
  ASSERT_TRUE(drv.wait_used(virtio_net::kRxQueue, 2));
  EXPECT_EQ(drv.read(NetDriver::rx_buffer(1) + virtio_net::kHeaderBytes, big.size()), big);
  EXPECT_TRUE(eventually([&] { return drv.trigger().count.load() >= 2; }));
  const virtio_net::Counters c = drv.device().counters();
  EXPECT_EQ(c.rx_frames, 2u);
  EXPECT_EQ(c.rx_bytes, f.size() + big.size());
}

TEST(NetDevice, NoInterruptWhileTheDriverSuppressesThem) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  // VIRTQ_AVAIL_F_NO_INTERRUPT on both queues (as Linux's NAPI while it polls): frames move
  // both ways and no interrupt is raised.
  drv.set_no_interrupt(virtio_net::kRxQueue, true);
  drv.set_no_interrupt(virtio_net::kTxQueue, true);
  const int before = drv.trigger().count.load();
  drv.send(frame(60, 1), 0);
  EXPECT_EQ(wire_recv(drv.wire()), frame(60, 1));
  ASSERT_TRUE(drv.wait_used(virtio_net::kTxQueue, 1));
  drv.post_rx(static_cast<uint32_t>(virtio_net::kLinuxSmallRxBuffer), 0);
  wire_send(drv.wire(), frame(70, 2));
  ASSERT_TRUE(drv.wait_used(virtio_net::kRxQueue, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a late interrupt would show
  EXPECT_EQ(drv.trigger().count.load(), before);
  // Interrupts back on for RX only: a received frame interrupts, a sent one does not.
  drv.set_no_interrupt(virtio_net::kRxQueue, false);
  drv.send(frame(60, 3), 1);
  EXPECT_EQ(wire_recv(drv.wire()), frame(60, 3));
  ASSERT_TRUE(drv.wait_used(virtio_net::kTxQueue, 2));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(drv.trigger().count.load(), before);
  drv.post_rx(static_cast<uint32_t>(virtio_net::kLinuxSmallRxBuffer), 1);
  wire_send(drv.wire(), frame(70, 4));
  ASSERT_TRUE(drv.wait_used(virtio_net::kRxQueue, 2));
  EXPECT_TRUE(eventually([&] { return drv.trigger().count.load() > before; }));
}

TEST(NetDevice, RuntAndOversizedTransmitsAreCountedBadAndNeverSent) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  drv.send(frame(13), 0);                          // shorter than an Ethernet header
  drv.send({}, 1);                                 // the header alone
  drv.send(frame(virtio_net::kMaxFrameBytes + 1), 2);     // longer than any frame
  // A chain shorter than the header itself.
  const uint16_t tiny = drv.chain(virtio_net::kTxQueue, {{NetDriver::kTxData, 5, false}});
  drv.publish(virtio_net::kTxQueue, tiny);
  const auto good = frame(virtio_net::kMaxFrameBytes, 3);  // the largest accepted
  drv.send(good, 3);
  ASSERT_TRUE(drv.wait_used(virtio_net::kTxQueue, 5));
  for (uint16_t i = 0; i < 5; ++i) EXPECT_EQ(drv.used_elem(virtio_net::kTxQueue, i).second, 0u);
  EXPECT_EQ(wire_recv(drv.wire()), good);
  EXPECT_FALSE(wire_has_frame(drv.wire()));
  const virtio_net::Counters c = drv.device().counters();
  EXPECT_EQ(c.tx_bad, 4u);
  EXPECT_EQ(c.tx_frames, 1u);
  EXPECT_FALSE(drv.transport().status() & st::kDeviceNeedsReset);
}

TEST(NetDevice, AFrameLargerThanTheBufferIsDroppedAndTheNextOneArrives) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  const uint16_t head = drv.post_rx(static_cast<uint32_t>(virtio_net::kLinuxSmallRxBuffer), 0);
  wire_send(drv.wire(), frame(2000, 1));  // larger than Linux's small buffer
  wire_send(drv.wire(), frame(10, 2));    // a runt
  const auto next = frame(200, 3);
  wire_send(drv.wire(), next);
  ASSERT_TRUE(drv.wait_used(virtio_net::kRxQueue, 1));
  EXPECT_EQ(drv.used_elem(virtio_net::kRxQueue, 0),
            (std::pair<uint32_t, uint32_t>{head, static_cast<uint32_t>(virtio_net::kHeaderBytes + next.size())}));
  EXPECT_EQ(drv.read(NetDriver::rx_buffer(0) + virtio_net::kHeaderBytes, next.size()), next);
  // A frame longer than kMaxFrameBytes is dropped even when the buffer could hold it.
  drv.post_rx(0x20000, 1);
  wire_send(drv.wire(), frame(virtio_net::kMaxFrameBytes + 100, 4));
  const auto last = frame(64, 5);
  wire_send(drv.wire(), last);
  ASSERT_TRUE(drv.wait_used(virtio_net::kRxQueue, 2));
  EXPECT_EQ(drv.read(NetDriver::rx_buffer(1) + virtio_net::kHeaderBytes, last.size()), last);
  const virtio_net::Counters c = drv.device().counters();
  EXPECT_EQ(c.rx_dropped, 3u);
  EXPECT_EQ(c.rx_frames, 2u);
}

TEST(NetDevice, WithoutReceiveBuffersFramesWaitInTheSocket) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  std::vector<std::vector<uint8_t>> frames;
  for (uint8_t i = 0; i < 3; ++i) {
    frames.push_back(frame(100 + i, i));
    wire_send(drv.wire(), frames.back());
  }
  // The worker sleeps meanwhile: no busy loop while frames wait.
  EXPECT_TRUE(stays_idle(200ms));
  EXPECT_EQ(drv.device().counters(), virtio_net::Counters{});  // nothing read, nothing lost
  for (uint16_t i = 0; i < 3; ++i) drv.post_rx(2048, i, i == 2);
  ASSERT_TRUE(drv.wait_used(virtio_net::kRxQueue, 3));
  for (uint16_t i = 0; i < 3; ++i) {
    EXPECT_EQ(drv.used_elem(virtio_net::kRxQueue, i).second, virtio_net::kHeaderBytes + frames[i].size());
    EXPECT_EQ(drv.read(NetDriver::rx_buffer(i) + virtio_net::kHeaderBytes, frames[i].size()), frames[i]);
  }
  EXPECT_EQ(drv.device().counters().rx_dropped, 0u);
}

TEST(NetDevice, QuiesceGivesBackAStalledFrameAndResumeSendsIt) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  // A small send buffer on the device's end: the wire stops taking frames after a few.
  int small = 4096;
  ASSERT_EQ(::setsockopt(drv.device().backend().fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  std::vector<std::vector<uint8_t>> frames;
  for (uint16_t i = 0; i < 14; ++i) {
    frames.push_back(frame(1500, static_cast<uint8_t>(i)));
    drv.send(frames.back(), i);
  }
  std::this_thread::sleep_for(200ms);
  const uint16_t sent = drv.used_idx(virtio_net::kTxQueue);
  ASSERT_LT(sent, 14) << "the backend never pushed back";
  // A receive buffer posted too: the RX queue goes through the quiesce as well.
  drv.post_rx(2048, 0);
  drv.transport().quiesce();
  const VirtioMmioTransport::State saved = drv.transport().save_state();
  ASSERT_EQ(saved.queues.size(), 2u);
  EXPECT_EQ(saved.queues[virtio_net::kTxQueue].queue.in_flight, 0);
  EXPECT_EQ(saved.queues[virtio_net::kTxQueue].queue.next_used, sent);
  EXPECT_EQ(saved.queues[virtio_net::kTxQueue].queue.next_avail, sent);  // the stalled one given back
  EXPECT_EQ(saved.queues[virtio_net::kRxQueue].queue.in_flight, 0);
  EXPECT_EQ(saved.queues[virtio_net::kRxQueue].queue.next_avail, 0);
  EXPECT_EQ(drv.device().save_state().mac, drv.device().mac());
  // A frame arriving while the device is quiesced waits in the socket.
  const auto in = frame(300, 9);
  wire_send(drv.wire(), in);
  drv.transport().resume();
  for (size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(wire_recv(drv.wire()), frames[i]) << i;
  ASSERT_TRUE(drv.wait_used(virtio_net::kTxQueue, 14));
  ASSERT_TRUE(drv.wait_used(virtio_net::kRxQueue, 1));
  EXPECT_EQ(drv.read(NetDriver::rx_buffer(0) + virtio_net::kHeaderBytes, in.size()), in);
  const virtio_net::Counters c = drv.device().counters();
  EXPECT_EQ(c.tx_frames, 14u);
  EXPECT_EQ(c.tx_dropped, 0u);
  EXPECT_FALSE(drv.transport().status() & st::kDeviceNeedsReset);
}

TEST(NetDevice, APeerThatHangsUpDropsFramesWithoutStallingTheGuest) {
  auto drv = std::make_unique<NetDriver>();
  ASSERT_EQ(drv->start(), kDriverOkStatus);
  drv->post_rx(2048, 0);
  // The test's wire end closes: the device's receives end, its sends fail.
  const int wire = drv->wire();
  ::shutdown(wire, SHUT_RDWR);
  drv->send(frame(60), 0);
  ASSERT_TRUE(drv->wait_used(virtio_net::kTxQueue, 1));
  EXPECT_TRUE(eventually([&] { return drv->device().counters().tx_dropped == 1; }));
  EXPECT_TRUE(stays_idle(200ms));  // the hung-up socket does not wake the worker forever
  EXPECT_EQ(drv->used_idx(virtio_net::kRxQueue), 0);  // the receive buffer stays posted
  EXPECT_FALSE(drv->transport().status() & st::kDeviceNeedsReset);
  drv.reset();  // teardown joins the worker
}

TEST(NetDevice, AHangUpWhileNoBufferIsPostedDoesNotSpin) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  wire_send(drv.wire(), frame(80, 1));  // waits in the socket: no buffer yet
  ::shutdown(drv.wire(), SHUT_RDWR);
  EXPECT_TRUE(stays_idle(200ms));
  // The frame sent before the hang-up is still delivered once a buffer is posted.
  drv.post_rx(2048, 0);
  ASSERT_TRUE(drv.wait_used(virtio_net::kRxQueue, 1));
  EXPECT_EQ(drv.device().counters().rx_frames, 1u);
  drv.post_rx(2048, 1);
  EXPECT_TRUE(stays_idle(100ms));
  EXPECT_EQ(drv.used_idx(virtio_net::kRxQueue), 1);
}

/// Waits until the transport reports DEVICE_NEEDS_RESET.
bool needs_reset(NetDriver& drv) {
  return eventually([&] { return (drv.transport().status() & st::kDeviceNeedsReset) != 0; });
}

TEST(NetDevice, ChainsInTheWrongDirectionAreReturnedUnused) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  // A receive "buffer" the device may only read, and one too small for a header.
  const uint16_t ro = drv.chain(virtio_net::kRxQueue, {{NetDriver::rx_buffer(0), 2048, false}});
  drv.publish(virtio_net::kRxQueue, ro);
  const uint16_t small = drv.chain(virtio_net::kRxQueue, {{NetDriver::rx_buffer(1), 20, true}});
  drv.publish(virtio_net::kRxQueue, small);
  wire_send(drv.wire(), frame(60));
  ASSERT_TRUE(drv.wait_used(virtio_net::kRxQueue, 2));
  EXPECT_EQ(drv.used_elem(virtio_net::kRxQueue, 0).second, 0u);
  EXPECT_EQ(drv.used_elem(virtio_net::kRxQueue, 1).second, 0u);
  // A transmit chain that is all device-writable holds no frame.
  const uint16_t wo = drv.chain(virtio_net::kTxQueue, {{NetDriver::kTxData, 100, true}});
  drv.publish(virtio_net::kTxQueue, wo);
  ASSERT_TRUE(drv.wait_used(virtio_net::kTxQueue, 1));
  const virtio_net::Counters c = drv.device().counters();
  EXPECT_EQ(c.rx_bad_buffers, 2u);
  EXPECT_EQ(c.tx_bad, 1u);
  EXPECT_FALSE(wire_has_frame(drv.wire()));
  // The frame still waits for a proper buffer.
  drv.post_rx(2048, 2);
  ASSERT_TRUE(drv.wait_used(virtio_net::kRxQueue, 3));
  EXPECT_EQ(drv.device().counters().rx_frames, 1u);
  EXPECT_FALSE(drv.transport().status() & st::kDeviceNeedsReset);
}

TEST(NetDevice, ABufferOutsideGuestMemoryBreaksTheQueue) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  const uint16_t bad = drv.chain(virtio_net::kTxQueue, {{NetDriver::kMemBytes - 8, 100, false}});
  drv.publish(virtio_net::kTxQueue, bad);
  EXPECT_TRUE(needs_reset(drv));
  EXPECT_NE(drv.transport().needs_reset_reason().find("TX"), std::string::npos)
      << drv.transport().needs_reset_reason();
  EXPECT_FALSE(wire_has_frame(drv.wire()));
  // The worker parks: frames sent after the break are never read into guest memory.
  drv.post_rx(2048, 0);
  wire_send(drv.wire(), frame(60));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(drv.used_idx(virtio_net::kRxQueue), 0);
}

TEST(NetDevice, ALoopingReceiveChainBreaksTheQueue) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  drv.set_desc(virtio_net::kRxQueue, 0, NetDriver::rx_buffer(0), 2048, kVirtqDescFNext | kVirtqDescFWrite, 1);
  drv.set_desc(virtio_net::kRxQueue, 1, NetDriver::rx_buffer(1), 2048, kVirtqDescFNext | kVirtqDescFWrite, 0);
  drv.publish(virtio_net::kRxQueue, 0);
  wire_send(drv.wire(), frame(60));
  EXPECT_TRUE(needs_reset(drv));
  EXPECT_NE(drv.transport().needs_reset_reason().find("RX"), std::string::npos)
      << drv.transport().needs_reset_reason();
}

TEST(NetDevice, AHeadPastTheQueueSizeBreaksTheQueue) {
  NetDriver drv;
  ASSERT_EQ(drv.start(), kDriverOkStatus);
  drv.publish(virtio_net::kTxQueue, 200);
  EXPECT_TRUE(needs_reset(drv));
  // A driver reset after the failure brings the device back (the worker is joined).
  drv.w(reg::kStatus, 0);
  EXPECT_EQ(drv.r(reg::kStatus), 0u);
}

TEST(NetDevice, QuiesceOfAnIdleDeviceRefuses) {
  NetDriver drv;
  EXPECT_THROW(drv.device().quiesce(), SnapshotError);
}

TEST(NetDevice, RestoreStateAcceptsAnotherMacAndRecordsIt) {
  NetDriver drv({0x02, 0, 0, 0, 0, 0x02});
  const NetDevice::State parent{{0x02, 0, 0, 0, 0, 0x01}};
  drv.device().restore_state(parent);
  EXPECT_EQ(drv.device().mac(), (NetDevice::Mac{0x02, 0, 0, 0, 0, 0x02}));  // config space
  EXPECT_EQ(drv.device().guest_mac(), parent.mac);
  EXPECT_EQ(drv.device().save_state().mac, drv.device().mac());
  EXPECT_THROW(drv.device().restore_state(NetDevice::State{{0x03, 0, 0, 0, 0, 0}}), SnapshotError);
}

}  // namespace
}  // namespace forkvm
