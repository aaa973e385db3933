// Why the agent gave up: the argument of a BootSignal::kFatal write (boot_signal.hpp), so the
// VMM can report a category without parsing the console. The console line
// "forkvm-agent: fatal: <why>" printed just before carries the details.
#pragma once

#include <cstdint>

namespace forkvm {

/// Categories of fatal agent errors (kFatal's 24-bit argument).
enum class FatalReason : uint32_t {
  kUnknown = 0,      ///< an unexpected exception or std::terminate
  kBootPort = 1,     ///< ioperm() on the boot-signal port failed
  kSignals = 2,      ///< signal mask setup failed
  kMount = 3,        ///< a required filesystem could not be mounted
  kConsole = 4,      ///< /dev/console could not be opened
  kConfig = 5,       ///< a forkvm.* command-line key had a bad value
  kSystemInfo = 6,   ///< /proc/cmdline, /proc/meminfo or the online CPU list was unreadable
  kSpawn = 7,        ///< a child process (shell, forkvm.run command) could not be started
  kWait = 8,         ///< waiting for children failed
  kCrash = 9,        ///< the agent itself took SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT
  kPowerOff = 10,    ///< reboot() returned instead of resetting the machine
  kNoAgentServer = 11,  ///< forkvm.after_ready=serve, but the vsock listeners could not be set up
  kRootFilesystem = 12,  ///< forkvm.root names a disk that is missing or cannot be mounted
};

/// A short name for a reason code as it arrives from the guest. Guest-controlled: any 24-bit
/// value can arrive, so unknown codes get a name too, never an out-of-range lookup.
constexpr const char* fatal_reason_name(uint32_t code) {
  switch (static_cast<FatalReason>(code)) {
    case FatalReason::kUnknown: return "unexpected exception";
    case FatalReason::kBootPort: return "boot-signal port unavailable";
    case FatalReason::kSignals: return "signal setup failed";
    case FatalReason::kMount: return "mount failed";
    case FatalReason::kConsole: return "console unavailable";
    case FatalReason::kConfig: return "bad forkvm.* command-line key";
    case FatalReason::kSystemInfo: return "system information unreadable";
    case FatalReason::kSpawn: return "could not start a process";
    case FatalReason::kWait: return "waiting for children failed";
    case FatalReason::kCrash: return "the agent crashed";
    case FatalReason::kPowerOff: return "reboot() returned";
    case FatalReason::kNoAgentServer: return "agent server unavailable (no vsock)";
    case FatalReason::kRootFilesystem: return "root filesystem unavailable";
  }
  return "unknown reason";
}

}  // namespace forkvm
