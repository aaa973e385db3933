#include "guest-init/agent/interface_mac.hpp"

#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "guest-init/agent/unique_fd.hpp"

namespace forkvm::agent {
namespace {

std::string errno_text(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

}  // namespace

MacChangeResult change_interface_mac(const protocol::MacAddress& from,
                                     const protocol::MacAddress& to) {
  MacChangeResult result;
  const UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    result.error = errno_text("socket(AF_INET)", errno);
    return result;
  }
  std::unique_ptr<struct if_nameindex, void (*)(struct if_nameindex*)> names(::if_nameindex(),
                                                               ::if_freenameindex);
  if (!names) {
    result.error = errno_text("if_nameindex", errno);
    return result;
  }
  for (const struct if_nameindex* n = names.get(); n->if_index != 0 && n->if_name != nullptr; ++n) {
    ifreq req{};
    std::strncpy(req.ifr_name, n->if_name, IFNAMSIZ - 1);
    // Guest-side network ioctls (not KVM), allowed for this file by
    // tests/unit/package/ioctl_confinement_test.sh.
    if (::ioctl(fd.get(), SIOCGIFHWADDR, &req) != 0) continue;  // vanished meanwhile
    if (req.ifr_hwaddr.sa_family != ARPHRD_ETHER) continue;
    if (std::memcmp(req.ifr_hwaddr.sa_data, from.data(), from.size()) != 0) continue;
    std::memcpy(req.ifr_hwaddr.sa_data, to.data(), to.size());
    if (::ioctl(fd.get(), SIOCSIFHWADDR, &req) != 0) {
      result.error = errno_text(std::string("SIOCSIFHWADDR ") + req.ifr_name, errno);
      return result;
    }
    result.interface = req.ifr_name;
    return result;
  }
  return result;
}

}  // namespace forkvm::agent
