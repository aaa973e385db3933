// The smallest machine components a snapshot can be restored from, for tests and fuzz seeds:
// the two vCPUs of sample_machine() and one virtio-vsock device that the driver never set up.
#pragma once

#include <cstdint>

#include "tests/unit/state/sample_state.hpp"
#include "vmm/machine_components.hpp"

namespace forkvm::state {

inline MachineComponents idle_vsock_components(uint32_t guest_cid) {
  MachineComponents c;
  c.machine = sample_machine();  // two vCPUs
  MachineComponents::Slot slot;
  slot.kind = VirtioDeviceKind::kVsock;
  slot.transport.device_id = 19;  // virtio-vsock, three queues, never activated
  slot.transport.queues.resize(3);
  slot.vsock.guest_cid = guest_cid;
  slot.vsock.next_local_port = (1u << 30) + 2;  // the device's first local port (2^30 and up)
  c.slots.push_back(slot);
  return c;
}

}  // namespace forkvm::state
