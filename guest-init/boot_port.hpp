// The agent's side of the boot-signal port (boot_signal.hpp): port I/O permission and the
// 32-bit writes. Under QEMU, or any VMM without the device, the writes are simply ignored.
#pragma once

#include <cstdint>

#include "contract/boot_signal.hpp"

namespace forkvm {

/// Asks the kernel for access to the port (ioperm; PID 1 has CAP_SYS_RAWIO). Throws
/// AgentError(kBootPort) when refused.
void enable_boot_port();

/// Writes encode_boot_signal(code, arg) to the port; does nothing before enable_boot_port()
/// succeeded. Async-signal-safe.
void send_boot_signal(BootSignal code, uint32_t arg) noexcept;

}  // namespace forkvm
