// Turning a waitpid() status into the number reported to the VMM with kPowerOff.
#pragma once

#include <cstdint>

namespace forkvm {

/// The shell's convention: the exit code (0-255) for a normal exit, 128 + N for death by
/// signal N. Any other status (stopped, continued) gives 255.
uint32_t exit_status_from_wait(int wait_status);

}  // namespace forkvm
