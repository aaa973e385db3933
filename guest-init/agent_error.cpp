#include "guest-init/agent_error.hpp"

#include <cerrno>
#include <cstring>

namespace forkvm {

void throw_errno(FatalReason reason, const std::string& what) {
  const int err = errno;  // before anything below can change it
  throw AgentError(reason, what + ": " + std::strerror(err));
}

}  // namespace forkvm
