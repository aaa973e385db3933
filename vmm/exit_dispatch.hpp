// dispatch(): what a vCPU does with one decoded exit. Pure over its inputs (the exit value and
// the two buses), so unit tests drive it with fabricated exits and no /dev/kvm.
#pragma once

#include <string>

#include "devices/bus.hpp"
#include "vmm/kvm/vcpu_exit.hpp"

namespace forkvm {

/// What the vCPU loop does next.
enum class ExitAction {
  kContinue,     ///< handled; re-enter the guest
  kInterrupted,  ///< the thread was kicked; check for pause/stop requests
  kGuestReset,   ///< the guest asked for a reset (or triple-faulted): the VM stops
  kGuestHalt,    ///< the guest shut itself down through a paravirt system event
  kFatal,        ///< KVM cannot go on with this vCPU (entry failure, internal error, ...)
  kDeviceError,  ///< a device threw while handling the exit: the VM stops (VcpuThread)
};

/// Handles one exit: port and MMIO accesses go to the buses (rep string I/O one element at a
/// time), everything else is turned into an action. Throws only what a device throws (which
/// none should: BusDevice); the vCPU thread turns that into kDeviceError.
ExitAction dispatch(const VcpuExit& exit, const Bus& pio, const Bus& mmio);

/// A one-line description of an exit, for logs and errors.
std::string describe(const VcpuExit& exit);

}  // namespace forkvm
