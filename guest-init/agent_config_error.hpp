// The error the agent's command-line handling throws. The agent itself does not link the forkvm
// library, so this derives from std::runtime_error rather than forkvm::Error.
#pragma once

#include <stdexcept>

namespace forkvm {

/// A `forkvm.*` command-line value the agent cannot use; what() says which key and why.
class AgentConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace forkvm
