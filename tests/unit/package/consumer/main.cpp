// Uses the public API only: validation errors are typed and need no KVM, and the sandbox
// client (which pulls in the installed forkvm-protocol) links and reports typed errors.
#include <forkvm/agent_client.hpp>
#include <forkvm/errors.hpp>
#include <forkvm/sandbox.hpp>
#include <forkvm/vm.hpp>

#include <cstdio>

int main() {
  forkvm::AgentClientOptions options;
  options.socket_path = "/nonexistent/forkvm-consumer.sock";
  try {
    forkvm::AgentClient::connect(options);
    return 1;
  } catch (const forkvm::AgentUnreachableError& e) {
    std::printf("AgentUnreachableError: %s\n", e.what());
  }
  forkvm::VmConfig config;
  config.vcpus = 0;
  try {
    forkvm::validate(config);
  } catch (const forkvm::ConfigError& e) {
    std::printf("ConfigError: %s\n", e.what());
    return 0;
  }
  return 1;
}
