// Uses the public API only: validation errors are typed and need no KVM.
#include <forkvm/errors.hpp>
#include <forkvm/vm.hpp>

#include <cstdio>

int main() {
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
