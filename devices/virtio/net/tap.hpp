// Opening a TAP interface (Linux Documentation/networking/tuntap.rst): /dev/net/tun, then
// TUNSETIFF with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, so each read and write is one Ethernet
// frame behind a 12-byte virtio-net header (offloads, net_header.hpp); the offload and header
// size ioctls (TUNSETOFFLOAD, TUNSETVNETHDRSZ) live here too. The
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

/// Whether the TAP descriptor `fd` carries a virtio-net header per frame (IFF_VNET_HDR).
bool tap_has_vnet_header(int fd) noexcept;

/// For an adopted TAP with IFF_VNET_HDR: sets its header size to the 12-byte
/// virtio_net_hdr_v1 and its offloads off, as open_tap_fd() does. These are properties of the
/// interface, shared with every descriptor of it. Returns "" or what failed.
std::string adopt_vnet_header(int fd);

/// TUNSETOFFLOAD: the TUN_F_* offloads the reader of `fd` takes (net_header.hpp's
/// tap_offloads()). Returns 0 or errno.
int set_tap_offloads(int fd, unsigned flags) noexcept;

/// Opens TAP `name` non-blocking and close-on-exec, with IFF_VNET_HDR (a 12-byte virtio-net
/// header per frame, offloads off until set_tap_offloads()), in the network namespace `netns` (a path
/// such as /var/run/netns/NAME) when it is not empty. A TAP descriptor stays bound to the
/// namespace it was created in, so the open runs on a short-lived thread that enters `netns`
/// (setns(CLONE_NEWNET)) and ends: the calling thread's and the process's namespace never
/// change. Throws ConfigError for a bad name, Error naming the TAP, the namespace and errno.
Fd open_tap_fd(const std::string& name, const std::string& netns);

}  // namespace forkvm
