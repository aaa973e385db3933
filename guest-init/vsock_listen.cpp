#include "guest-init/vsock_listen.hpp"

#include <dirent.h>
#include <sys/socket.h>

#include <linux/vm_sockets.h>

#include <cerrno>
#include <cstring>

#include "contract/protocol/messages.hpp"

namespace forkvm {
namespace {

// Where the guest kernel's virtio-vsock driver lists the devices bound to it (virtioN links).
constexpr const char* kVirtioVsockDriver = "/sys/bus/virtio/drivers/vmw_vsock_virtio_transport";

// With CONFIG_VIRTIO_VSOCKETS=y but no device, socket(), bind() and listen() all succeed and
// nothing can ever connect, so the device itself is looked for.
bool virtio_vsock_device_present() {
  DIR* dir = ::opendir(kVirtioVsockDriver);
  if (dir == nullptr) return false;
  bool found = false;
  while (const dirent* entry = ::readdir(dir)) {
    if (std::strncmp(entry->d_name, "virtio", 6) == 0) found = true;
  }
  ::closedir(dir);
  return found;
}

}  // namespace

agent::UniqueFd listen_vsock(std::uint32_t port, std::string& why) {
  agent::UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) {
    why = std::string("socket(AF_VSOCK): ") + std::strerror(errno);
    return {};
  }
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    why = "bind vsock port " + std::to_string(port) + ": " + std::strerror(errno);
    return {};
  }
  if (::listen(fd.get(), 64) != 0) {
    why = "listen on vsock port " + std::to_string(port) + ": " + std::strerror(errno);
    return {};
  }
  return fd;
}

std::optional<AgentSockets> listen_agent_sockets(std::string& why) {
  if (!virtio_vsock_device_present()) {
    why = std::string("no virtio-vsock device bound in ") + kVirtioVsockDriver;
    return std::nullopt;
  }
  AgentSockets sockets;
  sockets.agent = listen_vsock(protocol::kAgentPort, why);
  if (!sockets.agent.valid()) return std::nullopt;
  sockets.metadata = listen_vsock(protocol::kMetadataPort, why);
  if (!sockets.metadata.valid()) return std::nullopt;
  return sockets;
}

}  // namespace forkvm
