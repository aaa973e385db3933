// Opening a TAP interface (Linux Documentation/networking/tuntap.rst): /dev/net/tun, then
// TUNSETIFF with IFF_TAP | IFF_NO_PI, so each read and write is one bare Ethernet frame. The
// only ioctl outside vmm/kvm/ (unit_ioctl_confinement names this file as its exception): a TAP
// has no other interface.
#pragma once

#include <cstddef>
#include <string>

#include "base/fd.hpp"

namespace forkvm {

/// Longest TAP name: IFNAMSIZ (16) minus its NUL.
inline constexpr size_t kMaxTapName = 15;

/// Why `name` cannot be a TAP name (empty, longer than kMaxTapName, or holding '/' or NUL),
/// or "" when it can. VmConfig's validate() and open_tap_fd() share it.
std::string tap_name_problem(const std::string& name);

/// Why the character device `fd` cannot serve as a frame endpoint (not a TUN/TAP descriptor
/// attached to an interface, a TUN (IP packets, no Ethernet header), or a TAP without
/// IFF_NO_PI, whose frames carry a 4-byte prefix), or "" when it is a TAP with IFF_NO_PI.
std::string tap_fd_problem(int fd);

/// Opens TAP `name` non-blocking and close-on-exec, in the network namespace `netns` (a path
/// such as /var/run/netns/NAME) when it is not empty. A TAP descriptor stays bound to the
/// namespace it was created in, so the open runs on a short-lived thread that enters `netns`
/// (setns(CLONE_NEWNET)) and ends: the calling thread's and the process's namespace never
/// change. Throws ConfigError for a bad name, Error naming the TAP, the namespace and errno.
Fd open_tap_fd(const std::string& name, const std::string& netns);

}  // namespace forkvm
