// The agent's listening vsock sockets (contract/protocol/MESSAGES.md "Transport"), opened
// before the agent reports ready so that a host connecting right after kAgentReady finds them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "guest-init/agent/unique_fd.hpp"

namespace forkvm {

/// Both listening sockets of the agent.
struct AgentSockets {
  agent::UniqueFd agent;     ///< AF_VSOCK, VMADDR_CID_ANY, kAgentPort (framed protocol)
  agent::UniqueFd metadata;  ///< AF_VSOCK, VMADDR_CID_ANY, kMetadataPort (5555 NDJSON)
};

/// A non-blocking, close-on-exec AF_VSOCK stream socket listening on `port` for any CID
/// (VMADDR_CID_ANY). On failure returns an invalid fd and puts the reason in `why`. It does not
/// look for the device (listen_agent_sockets does).
[[nodiscard]] agent::UniqueFd listen_vsock(std::uint32_t port, std::string& why);

/// Listens on kAgentPort and kMetadataPort. On failure (no virtio-vsock device bound in
/// sysfs, socket() failing with EAFNOSUPPORT or ENODEV, or bind()/listen() failing) returns
/// nullopt and puts the reason in `why`.
[[nodiscard]] std::optional<AgentSockets> listen_agent_sockets(std::string& why);

}  // namespace forkvm
