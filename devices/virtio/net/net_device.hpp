// NetDevice: virtio-net (virtio 1.2 §5.1) behind the virtio-mmio transport, its host side one
// FrameEndpoint (a TAP or a datagram socket, net_backend.hpp). Two queues, RX (0) and TX (1),
// no control queue: the device offers VERSION_1 | MAC | STATUS and reports the link up; on a
// TAP with a virtio-net header it also offers checksum and TCP segmentation offloads both ways
// (feature::kOffloads), which the TAP carries out, told at activation what the guest takes
// (net_header.hpp). `forkvm-bench net` measured them: they roughly double a download. Frames move on one worker thread (net_worker.hpp), off the vCPU threads.
//
// Snapshots: quiesce() stops the worker and hands the queues back with nothing in flight; the
// State is the MAC the device announced. A restored (or forked) VM gets a device with its own
// backend and, usually, its own MAC: restore_state() accepts a different MAC and records the
// saved one (guest_mac()). The guest's driver read the MAC from config space once, at probe,
// and keeps using it (Linux does not re-read it on a config change), so until someone changes
// it inside the guest (`ip link set dev eth0 address ...`, which the sandbox layer does through
// the agent) a fork sends with its parent's MAC whatever config space says.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "devices/virtio/net/net_backend.hpp"
#include "devices/virtio/net/net_counters.hpp"
#include "devices/virtio/net/virtio_net.hpp"
#include "devices/virtio/virtio_device.hpp"

namespace forkvm {

namespace virtio_net {
class NetWorker;
}  // namespace virtio_net

class NetDevice final : public VirtioDevice {
 public:
  /// QueueNumMax of both queues.
  static constexpr uint16_t kQueueSize = 256;
  /// An Ethernet MAC address.
  using Mac = std::array<uint8_t, 6>;

  /// Why `mac` cannot be a device's MAC (a multicast address: bit 0 of the first byte), or ""
  /// when it can. All zeros is allowed: it asks for random_mac(). VmConfig's validate() and the
  /// constructor share it.
  static std::string mac_problem(const Mac& mac);
  /// A random locally administered unicast MAC (getrandom(2); first byte & 0xfe | 0x02).
  /// Throws Error when the kernel's random source fails.
  static Mac random_mac();
  /// "02:ab:..." (lowercase hex, colons).
  static std::string mac_text(const Mac& mac);

  /// A device moving frames between the guest and `backend`, announcing `mac` (random_mac()
  /// when all zeros). Throws ConfigError when mac_problem(mac) is not empty.
  NetDevice(FrameEndpoint backend, const Mac& mac);
  ~NetDevice() override;

  std::string name() const override { return "net"; }
  uint32_t device_id() const noexcept override { return virtio_id::kNet; }
  uint64_t device_features() const noexcept override;
  std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize, kQueueSize}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const noexcept override;
  /// The MAC is writable only with VIRTIO_NET_F_CTRL_MAC_ADDR on a control queue, which is not
  /// offered (§5.1.4): config writes are ignored.
  void write_config(uint64_t, std::span<const uint8_t>) noexcept override {}
  void activate(VirtioActivation activation) override;
  void reset() noexcept override;
  std::vector<Queue> quiesce() override;

  /// What a snapshot records of the device: the MAC it announced in config space. Frames are
  /// never in flight when it is captured (quiesce()), and the backend is host state that a
  /// restored VM is given anew.
  struct State {
    Mac mac{};
    /// Field equality.
    bool operator==(const State&) const = default;
  };
  /// The device's State.
  State save_state() const;
  /// Records `state` from the snapshot this device's VM was restored from. Its MAC may differ
  /// from this device's (a fork's fresh MAC): that is accepted, and config space keeps this
  /// device's own MAC; guest_mac() returns the saved one (file comment). Throws SnapshotError
  /// for a multicast MAC. Call before the transport activates the device.
  void restore_state(const State& state);

  /// The MAC config space announces.
  const Mac& mac() const noexcept { return mac_; }
  /// The MAC the guest's driver most likely uses: the one restore_state() recorded, or mac()
  /// for a device that was never restored.
  Mac guest_mac() const;
  /// The backend (its description, for messages).
  const FrameEndpoint& backend() const noexcept { return backend_; }
  /// What the device has done so far (a copy; safe from any thread while the worker runs).
  virtio_net::Counters counters() const noexcept { return counters_.load(); }

 private:
  FrameEndpoint backend_;
  Mac mac_{};
  virtio_net::Config config_{};
  mutable std::mutex mu_;  // guards restored_mac_
  std::optional<Mac> restored_mac_;
  virtio_net::AtomicCounters counters_;
  std::unique_ptr<virtio_net::NetWorker> worker_;
};

}  // namespace forkvm
