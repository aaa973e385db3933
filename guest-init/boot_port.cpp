#include "guest-init/boot_port.hpp"

#include <sys/io.h>

#include "guest-init/agent_error.hpp"

namespace forkvm {
namespace {

// Written once before anything can signal; read from signal handlers afterwards.
volatile bool g_port_enabled = false;

}  // namespace

void enable_boot_port() {
  if (::ioperm(kBootSignalPort, 4, 1) != 0) {
    throw_errno(FatalReason::kBootPort, "ioperm on the boot-signal port");
  }
  g_port_enabled = true;
}

void send_boot_signal(BootSignal code, uint32_t arg) noexcept {
  if (g_port_enabled) ::outl(encode_boot_signal(code, arg), kBootSignalPort);
}

}  // namespace forkvm
