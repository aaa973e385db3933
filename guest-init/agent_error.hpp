// The error type of the agent's system-facing code (mounts, console, processes). main() turns
// it into "forkvm-agent: fatal: <what>" and a kFatal boot signal carrying reason().
#pragma once

#include <stdexcept>
#include <string>

#include "contract/fatal_reason.hpp"

namespace forkvm {

/// A failure that stops the agent.
class AgentError : public std::runtime_error {
 public:
  /// `what` says what failed, e.g. "mount /proc (proc): No such device".
  AgentError(FatalReason reason, const std::string& what)
      : std::runtime_error(what), reason_(reason) {}
  /// The category reported to the VMM.
  FatalReason reason() const noexcept { return reason_; }

 private:
  FatalReason reason_;
};

/// Throws AgentError with `what` followed by ": " and the text of the current errno.
[[noreturn]] void throw_errno(FatalReason reason, const std::string& what);

}  // namespace forkvm
