#include "guest-init/guest_relay.hpp"

#include <sys/socket.h>

#include <linux/vm_sockets.h>

#include <cerrno>
#include <string_view>

#include "contract/net_ports.hpp"
#include "guest-init/console.hpp"
#include "guest-init/tcp_loopback.hpp"
#include "guest-init/vsock_listen.hpp"

namespace forkvm {
namespace {

constexpr std::size_t kMaxLoggedLine = 200;

// Egress: a non-blocking vsock connect to the host (CID 2), kEgressVsockPort. It completes
// (or fails: no host listener, the kernel's connect timeout) asynchronously.
relay::Dialed dial_host_egress() {
  relay::Dialed out;
  agent::UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    out.error = errno;
    return out;
  }
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_HOST;
  addr.svm_port = net::kEgressVsockPort;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS && errno != EINTR) {
    out.error = errno;
    return out;
  }
  out.fd = std::move(fd);
  return out;
}

}  // namespace

RelayListeners open_relay_listeners(std::vector<std::string>& warnings) {
  RelayListeners listeners;
  std::string why;
  listeners.proxy = relay::listen_loopback_tcp(net::kGuestProxyPort, why);
  if (!listeners.proxy.valid()) warnings.push_back("no egress proxy listener: " + why);
  listeners.forward = listen_vsock(net::kForwardVsockPort, why);
  if (!listeners.forward.valid()) warnings.push_back("no port-forward listener: " + why);
  return listeners;
}

std::unique_ptr<relay::PortRelay> start_port_relay(RelayListeners listeners) {
  if (!listeners.proxy.valid() && !listeners.forward.valid()) return nullptr;
  relay::RelayOptions options;
  options.log = [](std::string_view line) { say("relay: " + printable(line, kMaxLoggedLine)); };
  auto port_relay = std::make_unique<relay::PortRelay>(
      std::move(listeners.proxy), dial_host_egress, std::move(listeners.forward),
      relay::dial_loopback_tcp, std::move(options));
  port_relay->start();
  return port_relay;
}

}  // namespace forkvm
