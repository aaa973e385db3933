#include "devices/virtio/net/tap.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "base/netns.hpp"
#include "base/text.hpp"
#include "devices/virtio/net/virtio_net.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {
namespace {

/// What opening hands back: the descriptor, or the step that failed and its errno.
struct TapOpen {
  int fd = -1;
  const char* step = nullptr;
  int err = 0;
};

/// Makes the TAP's per-frame header the 12-byte virtio_net_hdr_v1 and turns its offloads off
/// (a persistent TAP keeps whatever its last user set): the step that failed, or nullptr.
const char* set_up_vnet_header(int fd) noexcept {
  const int size = static_cast<int>(virtio_net::kHeaderBytes);
  if (::ioctl(fd, TUNSETVNETHDRSZ, &size) != 0) return "TUNSETVNETHDRSZ";
  if (::ioctl(fd, TUNSETOFFLOAD, 0UL) != 0) return "TUNSETOFFLOAD";
  return nullptr;
}

/// The open itself, on a thread that is already in the right namespace. Never throws.
TapOpen open_here(const std::string& name) noexcept {
  const int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return {-1, "open /dev/net/tun", errno};
  ifreq req{};
  std::memcpy(req.ifr_name, name.data(), name.size());  // size checked: < IFNAMSIZ
  // IFF_VNET_HDR: every frame carries a virtio-net header, so offloads can pass through.
  req.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd, TUNSETIFF, &req) != 0) {
    const int err = errno;
    ::close(fd);
    return {-1, "TUNSETIFF", err};
  }
  if (const char* step = set_up_vnet_header(fd); step != nullptr) {
    const int err = errno;
    ::close(fd);
    return {-1, step, err};
  }
  return {fd, nullptr, 0};
}

}  // namespace

std::string tap_name_problem(const std::string& name) {
  static_assert(kMaxTapName + 1 == IFNAMSIZ);
  if (name.empty() || name.size() > kMaxTapName || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return "TAP name '" + printable(name, 64) + "' must be 1-" + std::to_string(kMaxTapName) +
           " characters without '/' or NUL";
  }
  return "";
}

bool tap_has_vnet_header(int fd) noexcept {
  ifreq req{};
  return ::ioctl(fd, TUNGETIFF, &req) == 0 && (req.ifr_flags & IFF_VNET_HDR) != 0;
}

std::string adopt_vnet_header(int fd) {
  if (const char* step = set_up_vnet_header(fd); step != nullptr) {
    return std::string(step) + ": " + errno_text(errno);
  }
  return "";
}

int set_tap_offloads(int fd, unsigned flags) noexcept {
  return ::ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(flags)) == 0 ? 0 : errno;
}

std::string tap_fd_problem(int fd) {
  ifreq req{};
  if (::ioctl(fd, TUNGETIFF, &req) != 0) {
    return "is not a TAP attached to an interface (TUNGETIFF: " + errno_text(errno) + ")";
  }
  const std::string name(req.ifr_name, strnlen(req.ifr_name, IFNAMSIZ));
  if ((req.ifr_flags & IFF_TAP) == 0) return "is TUN '" + name + "', not a TAP (no Ethernet frames)";
  if ((req.ifr_flags & IFF_NO_PI) == 0) {
    return "is TAP '" + name + "' without IFF_NO_PI (each frame would carry a 4-byte prefix)";
  }
  return "";
}

Fd open_tap_fd(const std::string& name, const std::string& netns) {
  if (const std::string why = tap_name_problem(name); !why.empty()) throw ConfigError(why);
  TapOpen result;
  // A TAP stays bound to the namespace it was opened in.
  if (const NetnsEntry entered = run_in_netns(netns, [&] { result = open_here(name); }); !entered) {
    result = {-1, entered.step, entered.err};
  }
  if (result.fd < 0) {
    const std::string where = netns.empty() ? "" : " in network namespace " + netns;
    std::string hint;
    if (result.err == EPERM || result.err == EACCES) hint = " (needs CAP_NET_ADMIN)";
    throw Error("TAP '" + name + "'" + where + ": " + result.step + ": " +
                errno_text(result.err) + hint);
  }
  return Fd(result.fd);
}

}  // namespace forkvm
