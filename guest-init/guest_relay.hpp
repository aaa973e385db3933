// The port relay as the agent runs it (port_relay.hpp): the proxy listener on TCP
// 127.0.0.1:kGuestProxyPort, the ingress listener on vsock kForwardVsockPort, egress dialed to
// the host over vsock and forwards dialed to TCP 127.0.0.1:<port>.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "guest-init/agent/unique_fd.hpp"
#include "guest-init/port_relay.hpp"

namespace forkvm {

/// The relay's two listening sockets; an invalid one is a path that is not served.
struct RelayListeners {
  agent::UniqueFd proxy;    ///< TCP 127.0.0.1:kGuestProxyPort (egress)
  agent::UniqueFd forward;  ///< AF_VSOCK, VMADDR_CID_ANY, kForwardVsockPort (ingress)
};

/// Opens both listeners (needs `lo` up and the vsock device). Each one that fails stays
/// invalid and adds a line to `warnings`; nothing throws.
[[nodiscard]] RelayListeners open_relay_listeners(std::vector<std::string>& warnings);

/// Starts the relay thread over `listeners`, logging through say(). nullptr when neither
/// listener is open. Throws std::system_error (eventfd, thread creation).
[[nodiscard]] std::unique_ptr<relay::PortRelay> start_port_relay(RelayListeners listeners);

}  // namespace forkvm
