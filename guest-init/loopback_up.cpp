#include "guest-init/loopback_up.hpp"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "guest-init/agent/unique_fd.hpp"

namespace forkvm {

std::optional<std::string> bring_loopback_up() {
  const agent::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return std::string("socket(AF_INET): ") + std::strerror(errno);
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(fd.get(), SIOCGIFFLAGS, &req) != 0) {
    return std::string("SIOCGIFFLAGS lo: ") + std::strerror(errno);
  }
  if ((req.ifr_flags & IFF_UP) != 0) return std::nullopt;
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
  if (::ioctl(fd.get(), SIOCSIFFLAGS, &req) != 0) {
    return std::string("SIOCSIFFLAGS lo up: ") + std::strerror(errno);
  }
  return std::nullopt;
}

}  // namespace forkvm
