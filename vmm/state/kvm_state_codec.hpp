// The KVM machine-state codec: JSON encoding of VcpuState, VmKernelState and MachineState, the
// "machine" component inside a snapshot's state.json (snapshot/state_file.hpp is the container).
//
// Integers are JSON numbers (exact up to 2^64-1 in nlohmann_json), byte blobs (LAPIC page,
// XSAVE area) are padded base64 (base/base64.hpp), and struct fields keep their KVM names
// (linux/kvm.h, asm/kvm.h) so that `forkvm snapshot inspect` output can be read against the
// kernel documentation. Padding and reserved fields are not stored (they are zero on restore).
//
// Decoding treats the JSON as hostile (it comes from a file): every field must be present, of
// the right type and in range (booleans 0/1, segment types < 16, vectors < 256, blob sizes
// exact, counts capped, MSR indices unique, flags limited to the ones KVM defines), and unknown
// fields are rejected. Any violation throws forkvm::SnapshotError naming the component and the
// field path, e.g. "snapshot: vcpu[1].sregs.cs.dpl: value 7 is above the maximum 3". The
// reader is base/json_reader.hpp, shared with the devices and the container.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "vmm/state/machine_state.hpp"
#include "vmm/state/vcpu_state.hpp"
#include "vmm/state/vm_state.hpp"

namespace forkvm::state {

/// Encodes one vCPU.
nlohmann::json to_json(const VcpuState& s);
/// Decodes one vCPU; `path` names it in errors (e.g. "vcpu[0]"). Throws SnapshotError.
VcpuState vcpu_state_from_json(const nlohmann::json& j, const std::string& path);

/// Encodes the VM-wide state.
nlohmann::json to_json(const VmKernelState& s);
/// Decodes the VM-wide state; `path` names it in errors (e.g. "vm"). Throws SnapshotError.
VmKernelState vm_state_from_json(const nlohmann::json& j, const std::string& path);

/// Encodes a machine: {"vcpus": [...], "vm": {...}}.
nlohmann::json to_json(const MachineState& s);
/// Decodes a machine with between 1 and `max_vcpus` vCPUs. Throws SnapshotError.
MachineState machine_state_from_json(const nlohmann::json& j, size_t max_vcpus = 255);

}  // namespace forkvm::state
