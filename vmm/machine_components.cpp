// Encoding and strict decoding of MachineComponents (the header lists the components).
#include "vmm/machine_components.hpp"

#include <algorithm>
#include <string>

#include "base/json_reader.hpp"
#include "devices/legacy/boot_signal_state.hpp"
#include "devices/legacy/i8042_state.hpp"
#include "devices/legacy/serial_state.hpp"
#include "devices/virtio/block/block_state.hpp"
#include "devices/virtio/mmio_transport_state.hpp"
#include "devices/virtio/net/net_state.hpp"
#include "devices/virtio/vsock/vsock_state.hpp"
#include "forkvm/errors.hpp"
#include "vmm/state/kvm_state_codec.hpp"

namespace forkvm {
namespace {

using nlohmann::json;

constexpr const char* kMachine = "machine";
constexpr const char* kSerial = "serial";
constexpr const char* kI8042 = "i8042";
constexpr const char* kBootSignal = "boot_signal";

std::string slot_component(size_t slot) { return "virtio." + std::to_string(slot); }

const char* kind_name(VirtioDeviceKind kind) {
  switch (kind) {
    case VirtioDeviceKind::kVsock: return "vsock";
    case VirtioDeviceKind::kBlock: return "blk";
    case VirtioDeviceKind::kNet: return "net";
  }
  return "unknown";
}

/// components[name], which must be present.
const json& component(const json& components, const std::string& name) {
  const auto it = components.find(name);
  if (it == components.end()) {
    throw SnapshotError("snapshot: components: '" + name + "' is missing");
  }
  return *it;
}

}  // namespace

json encode_components(const MachineComponents& c) {
  json j = json::object();
  j[kMachine] = state::to_json(c.machine);
  j[kSerial] = to_json(c.serial);
  j[kI8042] = to_json(c.i8042);
  j[kBootSignal] = to_json(c.boot_signal);
  for (size_t i = 0; i < c.slots.size(); ++i) {
    const MachineComponents::Slot& s = c.slots[i];
    json slot = {{"kind", kind_name(s.kind)}, {"transport", to_json(s.transport)}};
    switch (s.kind) {
      case VirtioDeviceKind::kVsock: slot["device"] = to_json(s.vsock); break;
      case VirtioDeviceKind::kBlock: slot["device"] = to_json(s.block); break;
      case VirtioDeviceKind::kNet: slot["device"] = to_json(s.net); break;
    }
    j[slot_component(i)] = std::move(slot);
  }
  return j;
}

MachineComponents decode_components(const json& components, uint32_t vcpus,
                                    const std::vector<VirtioDeviceKind>& kinds) {
  if (!components.is_object()) throw SnapshotError("snapshot: components: not an object");
  // Refuse unknown components: a snapshot with a device this machine does not have would
  // otherwise restore into a guest that still drives it.
  std::vector<std::string> known = {kMachine, kSerial, kI8042, kBootSignal};
  for (size_t i = 0; i < kinds.size(); ++i) known.push_back(slot_component(i));
  for (const auto& [name, value] : components.items()) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      throw SnapshotError("snapshot: components: unknown component '" + name.substr(0, 64) +
                          "' (the machine has " + std::to_string(kinds.size()) +
                          " virtio slots)");
    }
  }
  MachineComponents c;
  c.machine = state::machine_state_from_json(component(components, kMachine), vcpus);
  if (c.machine.vcpus.size() != vcpus) {
    throw SnapshotError("snapshot: components: 'machine' has " +
                        std::to_string(c.machine.vcpus.size()) + " vCPUs, the machine " +
                        std::to_string(vcpus));
  }
  c.serial = serial_state_from_json(component(components, kSerial));
  c.i8042 = i8042_state_from_json(component(components, kI8042));
  c.boot_signal = boot_signal_state_from_json(component(components, kBootSignal));
  for (size_t i = 0; i < kinds.size(); ++i) {
    const std::string name = slot_component(i);
    const json& j = component(components, name);
    JsonReader r(j, name);
    const std::string kind = r.string("kind", 16);
    if (kind != kind_name(kinds[i])) {
      r.fail("kind", "the snapshot has '" + kind + "' where this machine has '" +
                         kind_name(kinds[i]) + "'");
    }
    MachineComponents::Slot s;
    s.kind = kinds[i];
    s.transport = mmio_transport_state_from_json(r.member("transport"), "virtio-mmio[" + kind + "]");
    switch (s.kind) {
      case VirtioDeviceKind::kVsock: s.vsock = vsock_state_from_json(r.member("device")); break;
      case VirtioDeviceKind::kBlock: s.block = block_state_from_json(r.member("device")); break;
      case VirtioDeviceKind::kNet: s.net = net_state_from_json(r.member("device")); break;
    }
    r.finish();
    c.slots.push_back(std::move(s));
  }
  return c;
}

}  // namespace forkvm
