// Fuzz target: a snapshot's state.json as the reader takes it (snapshot/state_file.hpp
// parse_state: depth-checked parse, format version, machine config, disks, memory digest),
// then its components through decode_components for the machine it describes (the virtio
// kinds follow from the machine: vsock, one block device per disk, net), as VmImage::open does
// after the file digests matched. A components object that decodes must encode and decode
// again to the same JSON (what a fork applies is what was captured); SnapshotError is the
// answer to everything else.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "forkvm/errors.hpp"
#include "snapshot/state_file.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "vmm/machine_components.hpp"

using namespace forkvm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  snapshot::State state;
  try {
    state = snapshot::parse_state(text, "fuzz/state.json");
  } catch (const SnapshotError&) {
    return 0;
  }
  std::vector<VirtioDeviceKind> kinds;
  if (state.machine.guest_cid) kinds.push_back(VirtioDeviceKind::kVsock);
  for (size_t i = 0; i < state.machine.disks.size(); ++i) kinds.push_back(VirtioDeviceKind::kBlock);
  if (state.machine.net) kinds.push_back(VirtioDeviceKind::kNet);
  MachineComponents decoded;
  try {
    decoded = decode_components(state.components, state.machine.vcpus, kinds);
  } catch (const SnapshotError&) {
    return 0;
  }
  const nlohmann::json again = encode_components(decoded);
  try {
    if (encode_components(decode_components(again, state.machine.vcpus, kinds)) != again) {
      std::fprintf(stderr, "state_json_fuzz: components do not round-trip\n");
      std::abort();
    }
  } catch (const SnapshotError& e) {
    std::fprintf(stderr, "state_json_fuzz: re-encoded components refused: %s\n", e.what());
    std::abort();
  }
  return 0;
}
