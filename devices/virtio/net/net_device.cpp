#include "devices/virtio/net/net_device.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/text.hpp"
#include "contract/protocol/field_rules.hpp"
#include "devices/virtio/net/net_header.hpp"
#include "devices/virtio/net/net_worker.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {

std::string NetDevice::mac_problem(const Mac& mac) {
  if ((mac[0] & 0x01) != 0) return "MAC " + mac_text(mac) + " is a multicast address";
  return "";
}

NetDevice::Mac NetDevice::random_mac() {
  Mac mac{};
  for (size_t got = 0; got < mac.size();) {
    const ssize_t n = ::getrandom(mac.data() + got, mac.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("net: getrandom for a MAC address: " + errno_text(errno));
    }
    got += static_cast<size_t>(n);
  }
  // Unicast (bit 0 clear), locally administered (bit 1 set): never a vendor's address.
  mac[0] = static_cast<uint8_t>((mac[0] & 0xfe) | 0x02);
  return mac;
}

std::string NetDevice::mac_text(const Mac& mac) { return protocol::format_mac(mac); }

NetDevice::NetDevice(FrameEndpoint backend, const Mac& mac) : backend_(std::move(backend)) {
  if (const std::string why = mac_problem(mac); !why.empty()) throw ConfigError("net: " + why);
  mac_ = std::all_of(mac.begin(), mac.end(), [](uint8_t b) { return b == 0; }) ? random_mac() : mac;
  std::copy(mac_.begin(), mac_.end(), config_.mac);
  config_.status = virtio_net::link_status::kLinkUp;
  config_.max_virtqueue_pairs = 1;
  config_.mtu = 1500;
}

NetDevice::~NetDevice() { reset(); }

uint64_t NetDevice::device_features() const noexcept {
  const uint64_t base =
      virtio_feature::kVersion1 | virtio_net::feature::kMac | virtio_net::feature::kStatus;
  // Offloads only where the backend carries the header that describes them.
  return backend_.vnet_header() ? base | virtio_net::feature::kOffloads : base;
}

void NetDevice::read_config(uint64_t offset, std::span<uint8_t> data) const noexcept {
  // Guest-controlled offset and length: copy only the overlap with the config structure.
  if (offset >= sizeof config_) return;
  const size_t n = std::min<uint64_t>(data.size(), sizeof config_ - offset);
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&config_) + offset, n);
}

void NetDevice::activate(VirtioActivation activation) {
  reset();
  if (activation.queues.size() != 2 || activation.queue_events.size() != 2) {
    throw Error("virtio-net activate: need 2 queues and 2 eventfds, got " +
                std::to_string(activation.queues.size()) + " and " +
                std::to_string(activation.queue_events.size()));
  }
  if (!activation.memory || !activation.interrupt || !activation.needs_reset) {
    throw Error("virtio-net activate: missing guest memory, interrupt or reset callback");
  }
  // Linux enables both queues; a queue the driver left disabled would never move, so it is a
  // driver error, reported at DRIVER_OK rather than found as a stall later.
  if (!activation.queues[virtio_net::kRxQueue].ready() || !activation.queues[virtio_net::kTxQueue].ready()) {
    throw Error("virtio-net activate: the RX and TX queues must both be enabled");
  }
  if (backend_.vnet_header()) {
    // What the guest takes on receive; the kernel segments and checksums everything else
    // before the TAP hands it over. A restored device sets the same from the saved features.
    const unsigned offloads = virtio_net::tap_offloads(activation.acked_features);
    if (const int err = backend_.set_offloads(offloads); err != 0) {
      throw Error("virtio-net activate: " + backend_.description() + ": TUNSETOFFLOAD " +
                  std::to_string(offloads) + ": " + errno_text(err));
    }
  }
  worker_ = std::make_unique<virtio_net::NetWorker>(std::move(activation), backend_, counters_);
}

void NetDevice::reset() noexcept {
  if (!worker_) return;
  worker_->stop();
  worker_.reset();
}

std::vector<Queue> NetDevice::quiesce() {
  if (!worker_) throw SnapshotError("snapshot: virtio-net: quiesce of a device that is not activated");
  // Frames still in the backend stay there (the backend outlives the worker) and are delivered
  // once the device runs again; a transmit frame the backend had not taken is given back.
  std::vector<Queue> queues = worker_->take_queues();
  worker_.reset();
  return queues;
}

NetDevice::State NetDevice::save_state() const { return State{mac_}; }

void NetDevice::restore_state(const State& state) {
  if (const std::string why = mac_problem(state.mac); !why.empty()) {
    throw SnapshotError("snapshot: net: saved " + why);
  }
  std::lock_guard lock(mu_);
  restored_mac_ = state.mac;
}

NetDevice::Mac NetDevice::guest_mac() const {
  std::lock_guard lock(mu_);
  return restored_mac_.value_or(mac_);
}

}  // namespace forkvm
