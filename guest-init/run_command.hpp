// The agent's side of `forkvm.run=<command>`: decoding (the encoding is the host's, in
// contract/run_command.hpp, which says what the escapes are).
#pragma once

#include <string>
#include <string_view>

#include "contract/run_command.hpp"
#include "guest-init/agent_config_error.hpp"

namespace forkvm {

/// Decodes a forkvm.run value. Throws AgentConfigError on a bad escape or a NUL byte.
std::string decode_run_command(std::string_view encoded);

}  // namespace forkvm
