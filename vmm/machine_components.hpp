// MachineComponents: everything a snapshot or a fork carries besides guest RAM, decoded: the
// KVM machine state (every vCPU, irqchips, PIT, kvmclock) and every device's state. Captured
// from a paused VM, applied to a newly built one (vm_snapshot.cpp), and encoded as the
// "components" object of state.json:
//   "machine"      vmm/state MachineState;
//   "serial", "i8042", "boot_signal"   the legacy devices (devices/legacy/*_state.hpp);
//   "virtio.<i>"   virtio-mmio slot i (slot order: vsock, disks, net; virtio_mmio_slots.hpp):
//                  {"kind": "vsock", "blk" or "net", "transport": {...}, "device": {...}}
//                  (vsock_state.hpp, block_state.hpp, net_state.hpp).
// Decoding is strict: a missing, unknown or mistyped component is a SnapshotError. A Template
// decodes once and applies the decoded object to every fork.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "devices/legacy/boot_signal.hpp"
#include "devices/legacy/i8042.hpp"
#include "devices/legacy/serial.hpp"
#include "devices/virtio/block/block_device.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "devices/virtio/net/net_device.hpp"
#include "devices/virtio/vsock/vsock_device.hpp"
#include "vmm/state/machine_state.hpp"
#include "vmm/virtio_mmio_slots.hpp"

namespace forkvm {

/// The decoded state of a machine and its devices.
struct MachineComponents {
  /// One virtio-mmio slot: its device kind, transport and device state.
  struct Slot {
    VirtioDeviceKind kind = VirtioDeviceKind::kVsock;
    VirtioMmioTransport::State transport;
    VsockDevice::State vsock;  ///< kind == kVsock
    BlockDevice::State block;  ///< kind == kBlock
    NetDevice::State net;      ///< kind == kNet
  };
  state::MachineState machine;
  Serial::State serial;
  I8042::State i8042;
  BootSignalDevice::State boot_signal;
  std::vector<Slot> slots;  ///< in slot order
};

/// Encodes `c` as the components object of state.json (file comment).
nlohmann::json encode_components(const MachineComponents& c);

/// Decodes and checks a components object for a machine with `vcpus` vCPUs and the virtio
/// devices `kinds` (in slot order): every component present, none unknown, every value valid.
/// Throws SnapshotError naming the component and field.
MachineComponents decode_components(const nlohmann::json& components, uint32_t vcpus,
                                    const std::vector<VirtioDeviceKind>& kinds);

}  // namespace forkvm
