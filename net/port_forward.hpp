// A guest TCP port made reachable on the host (Sandbox::expose_port, expose_port_unix): a
// listener on the host's 127.0.0.1 or on a Unix socket, whose every connection goes through the VM's vsock socket to the agent's
// forward port and on to the guest port (contract/net_ports.hpp has the handshake). Runs on
// the network thread (io_thread.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace forkvm::net {

struct ForwardCore;

/// One exposed port. The destructor closes the listener and every connection.
class PortForward {
 public:
  /// Listens on 127.0.0.1:`host_port` (0: any free port) and forwards to `guest_port` through
  /// the Firecracker-style vsock socket `vsock_socket`. Throws forkvm::ConfigError when the
  /// port cannot be bound.
  PortForward(std::string vsock_socket, uint16_t guest_port, uint16_t host_port);
  /// Listens on the Unix socket `unix_path` instead (created mode 0600, before anyone can
  /// connect; an existing file there is an error, never replaced; removed by the destructor).
  /// Throws forkvm::ConfigError when the path is too long or cannot be bound.
  PortForward(std::string vsock_socket, uint16_t guest_port, const std::string& unix_path);
  ~PortForward();
  PortForward(const PortForward&) = delete;
  PortForward& operator=(const PortForward&) = delete;

  /// The host port listening (0 for a Unix socket).
  uint16_t host_port() const noexcept { return host_port_; }
  /// The Unix socket listening ("" for a TCP port).
  const std::string& unix_path() const noexcept { return unix_path_; }
  /// The guest port.
  uint16_t guest_port() const noexcept { return guest_port_; }

 private:
  uint16_t guest_port_;
  uint16_t host_port_ = 0;
  std::string unix_path_;
  std::shared_ptr<ForwardCore> core_;
};

}  // namespace forkvm::net
