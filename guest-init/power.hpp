// Ending the VM. The agent is PID 1 and must never exit (the kernel would panic), so every
// way out is a reset: reboot(RB_AUTOBOOT). The VMM boots the guest with reboot=k, which makes
// that a pulse on the i8042 reset line the VMM traps; RB_POWER_OFF would need ACPI, which the
// guest kernel does not have. The boot-signal write just before tells the VMM whether the
// reset is a clean power-off (with an exit status) or a fatal error.
#pragma once

#include <cstdint>
#include <string_view>

#include "contract/fatal_reason.hpp"

namespace forkvm {

/// Prints "powering off (status N)", syncs, writes kPowerOff(status) and resets.
[[noreturn]] void power_off(uint32_t status) noexcept;

/// Prints "fatal: <why>", writes kFatal(reason), syncs and resets.
[[noreturn]] void fatal(FatalReason reason, std::string_view why) noexcept;

/// Installs handlers that turn a crash of the agent (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
/// SIGABRT) into a fatal reset instead of a kernel panic.
void install_crash_handlers() noexcept;

}  // namespace forkvm
