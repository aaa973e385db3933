// The boot-signal port: how the guest agent tells the VMM about milestones, the way
// Firecracker's boot timer does, but over port I/O so the agent needs no /dev/mem mapping.
// Shared by the host (devices/legacy/boot_signal.*) and the agent (guest-init/).
//
// The agent writes one 32-bit value with `outl` to kBootSignalPort:
//   bits 0-7   a BootSignal code
//   bits 8-31  an argument (the exit status for kPowerOff, a reason for kFatal)
// The VMM timestamps each write on arrival; the agent never reads the port.
#pragma once

#include <cstdint>

namespace forkvm {

/// Codes the agent writes to the boot-signal port.
enum class BootSignal : uint8_t {
  kAgentReady = 1,  ///< PID 1 has mounted its filesystems and is ready to serve.
  kPowerOff = 2,    ///< A clean power-off follows (argument: exit status to report).
  kFatal = 3,       ///< The agent failed fatally and is about to reset the VM (argument: reason).
};

/// Builds the 32-bit value the agent writes.
constexpr uint32_t encode_boot_signal(BootSignal code, uint32_t arg) {
  return static_cast<uint32_t>(code) | ((arg & 0xffffffu) << 8);
}

/// Port the value is written to: free on a PC (between the PIIX4 power-management ports and
/// 0x4d0, the ELCR). The machine layout (layout.hpp) places the host's device here.
inline constexpr uint16_t kBootSignalPort = 0x440;

}  // namespace forkvm
