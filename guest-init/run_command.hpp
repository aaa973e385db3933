// The encoding of `forkvm.run=<command>` on the kernel command line: percent-escaping.
//
// The command is the value with every "%XX" (two hex digits, either case) replaced by that
// byte; every other byte stands for itself. The kernel splits the command line on whitespace
// outside double quotes and strips one level of quotes (kernel_cmdline.hpp), so a simple
// command can be written as forkvm.run="echo hello" and anything else, including spaces,
// quotes, '%' and newlines, can be escaped: forkvm.run=echo%20%22hi%22. A '%' not followed by
// two hex digits, or a decoded NUL byte, is an error. ('+' is not a space: this is not HTML
// form encoding.)
#pragma once

#include <string>
#include <string_view>

#include "guest-init/agent_config_error.hpp"

namespace forkvm {

/// Decodes a forkvm.run value. Throws AgentConfigError on a bad escape or a NUL byte.
std::string decode_run_command(std::string_view encoded);

/// Encodes a shell command for forkvm.run: every byte outside [A-Za-z0-9] and "-._~/,:=+@"
/// becomes %XX, so the result has no whitespace or quotes and survives the kernel's parsing.
std::string encode_run_command(std::string_view command);

}  // namespace forkvm
