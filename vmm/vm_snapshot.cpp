// Vm::snapshot and Vm::restore: a running machine captured into one components object plus its
// memory (snapshot/ writes both to disk), and a machine rebuilt from them.
//
// The components object of state.json (every value an object, as snapshot/ requires):
//   "machine"      vmm/state MachineState: every vCPU, then irqchips, PIT and kvmclock;
//   "serial", "i8042", "boot_signal"   the legacy devices (devices/legacy/*_state.hpp);
//   "virtio.<i>"   virtio-mmio slot i: {"kind": "vsock", "transport": {...}, "device": {...}}.
// Decoding is strict: a missing, unknown or mistyped component is a SnapshotError.
//
// Capture order (devices/SNAPSHOT.md "Save order"): pause the vCPUs; quiesce every transport
// (vsock posts TRANSPORT_RESET and raises its interrupt, so both reach the saved irqchip and
// memory); vCPU state then VM state; serial, i8042, boot signal, then each slot's transport and
// device; guest memory; resume the transports and the vCPUs.
// Restore order (devices/SNAPSHOT.md "Restore order", on a machine built as at boot: memory
// slots, irqchip, PIT, devices at the same slots, vCPUs created): CPU features checked; vCPU
// state then VM state (vmm/state); serial, i8042, boot signal; per slot the device's state then
// the transport's (which re-activates and re-kicks); then the vCPU threads start.
#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "devices/legacy/boot_signal_state.hpp"
#include "devices/legacy/i8042_state.hpp"
#include "devices/legacy/serial_state.hpp"
#include "devices/state_json.hpp"
#include "devices/virtio/mmio_transport_state.hpp"
#include "devices/virtio/vsock/vsock_device.hpp"
#include "devices/virtio/vsock/vsock_state.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/sandbox_errors.hpp"
#include "snapshot/snapshot.hpp"
#include "vmm/state/cpu_features.hpp"
#include "vmm/state/machine_state.hpp"
#include "vmm/state/state_json.hpp"
#include "vmm/vm_impl.hpp"

namespace forkvm {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kMachine = "machine";
constexpr const char* kSerial = "serial";
constexpr const char* kI8042 = "i8042";
constexpr const char* kBootSignal = "boot_signal";

std::string slot_component(size_t slot) { return "virtio." + std::to_string(slot); }

const char* kind_name(VirtioDeviceKind kind) {
  switch (kind) {
    case VirtioDeviceKind::kVsock: return "vsock";
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

/// The vsock device behind slot `slot` (kind checked by the caller).
VsockDevice& vsock_device(const std::shared_ptr<VirtioDevice>& device) {
  return static_cast<VsockDevice&>(*device);
}

std::vector<const VcpuFd*> vcpu_fds(const std::vector<std::unique_ptr<VcpuThread>>& vcpus) {
  std::vector<const VcpuFd*> fds;
  fds.reserve(vcpus.size());
  for (const auto& v : vcpus) fds.push_back(&v->vcpu());
  return fds;
}

}  // namespace

json Vm::Impl::capture_components(const std::function<void(const json&)>& with_paused) {
  // Resumes the transports and then the vCPUs when the capture ends, whether it succeeded or
  // not: the VM being snapshotted keeps running.
  struct ResumeOnExit {
    Impl& impl;
    ~ResumeOnExit() {
      for (auto& t : impl.virtio) t->resume();  // no-op unless quiesced; never throws
      if (!impl.user_paused) {
        for (auto& v : impl.vcpus) v->resume();
      }
    }
  };
  for (auto& v : vcpus) v->pause();  // 1: every vCPU parked outside KVM_RUN, its I/O completed
  const ResumeOnExit resume_on_exit{*this};
  {
    std::lock_guard lock(mu);
    if (result) {
      throw InvalidStateError("Vm::snapshot: the VM has stopped (" +
                              std::string(to_string(result->reason)) + ")");
    }
  }
  for (auto& t : virtio) t->quiesce();  // 2: before the KVM state and memory are read

  json c = json::object();
  const std::vector<const VcpuFd*> fds = vcpu_fds(vcpus);
  c[kMachine] = state::to_json(state::MachineState::capture(*vm, fds, msrs));  // 3
  c[kSerial] = to_json(serial->save());                                        // 4
  c[kI8042] = to_json(i8042->save());
  c[kBootSignal] = to_json(boot_signal->save());
  for (size_t i = 0; i < virtio.size(); ++i) {
    json slot = {{"kind", kind_name(virtio_kinds[i])}, {"transport", to_json(virtio[i]->save_state())}};
    switch (virtio_kinds[i]) {
      case VirtioDeviceKind::kVsock:
        slot["device"] = to_json(vsock_device(virtio_devices[i]).save_state());
        break;
    }
    c[slot_component(i)] = std::move(slot);
  }
  if (with_paused) with_paused(c);  // 5: guest memory, still paused
  return c;                         // 6: ResumeOnExit
}

void Vm::Impl::restore_components(const json& components) {
  // Refuse unknown components: a snapshot with a device this machine does not have would
  // otherwise restore into a guest that still drives it.
  std::vector<std::string> known = {kMachine, kSerial, kI8042, kBootSignal};
  for (size_t i = 0; i < virtio.size(); ++i) known.push_back(slot_component(i));
  for (const auto& [name, value] : components.items()) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      throw SnapshotError("snapshot: components: unknown component '" + name +
                          "' (the machine has " + std::to_string(virtio.size()) +
                          " virtio slots)");
    }
  }

  // Decode and check everything before any state reaches KVM or a device.
  const state::MachineState machine =
      state::machine_state_from_json(component(components, kMachine), config.vcpus);
  const auto host_cpuid = kvm->supported_cpuid();
  for (const auto& v : machine.vcpus) state::require_cpu_features(v.cpuid, host_cpuid);
  const Serial::State serial_state = serial_state_from_json(component(components, kSerial));
  const I8042::State i8042_state = i8042_state_from_json(component(components, kI8042));
  const BootSignalDevice::State signals =
      boot_signal_state_from_json(component(components, kBootSignal));
  struct Slot {
    VirtioMmioTransport::State transport;
    VsockDevice::State vsock;
  };
  std::vector<Slot> slots;
  for (size_t i = 0; i < virtio.size(); ++i) {
    const std::string name = slot_component(i);
    const json& j = component(components, name);
    state_json::expect_object(j, name, {"kind", "transport", "device"});
    const std::string kind = state_json::get_string(j, name, "kind", 16);
    if (kind != kind_name(virtio_kinds[i])) {
      state_json::fail(name, "kind", "the snapshot has '" + kind + "' where this machine has '" +
                                         kind_name(virtio_kinds[i]) + "'");
    }
    Slot s;
    s.transport = mmio_transport_state_from_json(state_json::field(j, name, "transport"),
                                                 "virtio-mmio[" + kind + "]");
    s.vsock = vsock_state_from_json(state_json::field(j, name, "device"));
    slots.push_back(std::move(s));
  }

  machine.restore(*vm, vcpu_fds(vcpus));  // 1: vCPUs, then irqchips, PIT, kvmclock
  serial->restore(serial_state);           // 2: legacy devices re-drive their lines
  i8042->restore(i8042_state);
  const auto now = Clock::now();
  boot_signal->restore(signals, now);
  {
    // The observer is not told of restored signals; what it would have recorded is set here.
    std::lock_guard lock(mu);
    if (signals.agent_ready.count > 0) ready = now;
    if (signals.power_off.count > 0) {
      poweroff_announced = true;
      poweroff_status = signals.power_off.last_arg;
    }
    if (signals.fatal.count > 0) agent_fatal = signals.fatal.last_arg;
  }
  for (size_t i = 0; i < virtio.size(); ++i) {  // 3: device, then transport (activates)
    vsock_device(virtio_devices[i]).restore_state(slots[i].vsock);
    virtio[i]->restore_state(slots[i].transport);
  }
}

void Vm::snapshot(const std::string& dir) {
  std::lock_guard lifecycle(impl_->lifecycle_mu);
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->started) throw InvalidStateError("Vm::snapshot: the VM was never started");
    if (impl_->result) {
      throw InvalidStateError("Vm::snapshot: the VM has stopped (" +
                              std::string(to_string(impl_->result->reason)) + ")");
    }
  }
  snapshot::MachineConfig machine;
  machine.vcpus = impl_->config.vcpus;
  machine.memory_mib = impl_->config.memory_mib;
  machine.cmdline = impl_->boot_cmdline;
  if (impl_->config.vsock) machine.guest_cid = impl_->config.vsock->guest_cid;
  impl_->capture_components([&](const json& components) {
    snapshot::write_snapshot(dir, machine, components, impl_->memory);
  });
}

std::unique_ptr<Vm> Vm::restore(const std::string& dir, const RestoreOptions& options) {
  const auto t0 = Clock::now();
  snapshot::OpenOptions open_options;
  open_options.verify_memory = options.verify_memory;
  const snapshot::SnapshotFiles files = snapshot::open_snapshot(dir, open_options);
  const snapshot::MachineConfig& m = files.state.machine;
  if (m.guest_cid.has_value() != options.vsock.has_value()) {
    throw ConfigError(m.guest_cid ? "Vm::restore: the snapshot's machine has a vsock device: "
                                    "RestoreOptions::vsock must give its socket path"
                                  : "Vm::restore: the snapshot's machine has no vsock device, "
                                    "but RestoreOptions::vsock is set");
  }
  if (options.vsock) validate_vsock(*options.vsock);

  VmConfig config;
  config.vcpus = m.vcpus;
  config.memory_mib = m.memory_mib;
  config.console = options.console;
  config.kvm_device = options.kvm_device;
  config.vsock = options.vsock;
  auto impl = std::make_unique<Impl>(config, snapshot::map_snapshot_memory(files));
  impl->boot_cmdline = m.cmdline;
  impl->create_virtio_devices();
  impl->build_machine();
  impl->create_vcpu_threads();
  {
    // Before restore_components(), which marks the agent ready when it was: ready >= started.
    std::lock_guard lock(impl->mu);
    impl->started = Clock::now();
  }
  impl->restore_components(files.state.components);
  impl->build_time = Clock::now() - t0;
  for (auto& v : impl->vcpus) v->start(true);
  return std::unique_ptr<Vm>(new Vm(std::move(impl)));
}

}  // namespace forkvm
