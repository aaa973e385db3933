// Splitting a kernel command line (/proc/cmdline) into parameters exactly as the kernel does
// (lib/cmdline.c next_arg() in Linux 6.1), so that the agent sees the same key/value pairs the
// kernel saw: whitespace separates parameters except inside double quotes; a value that starts
// with a quote has that quote and a final quote stripped; a parameter that starts with a quote
// has that quote and its final quote stripped; quotes elsewhere are kept verbatim.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace forkvm {

/// One parameter of a kernel command line.
struct CmdlineParam {
  std::string key;                   ///< text before the first '=' (the whole word if none)
  std::optional<std::string> value;  ///< text after the first '='; nullopt when there is none
};

/// Splits `cmdline` into parameters in order (duplicates kept; later ones win by convention).
/// Never fails: every byte sequence is some command line.
std::vector<CmdlineParam> parse_kernel_cmdline(std::string_view cmdline);

}  // namespace forkvm
