// The --net option of `forkvm run`: tap=NAME[,netns=PATH][,mac=MAC], as a NetConfig.
#pragma once

#include <string>

#include "forkvm/vm.hpp"

namespace forkvm::cli {

/// The usage text for --net.
extern const char* const kNetUsage;

/// Parses one --net value. Throws UsageError for a missing or empty tap=, an unknown or
/// repeated key, or a MAC that is not a unicast xx:xx:xx:xx:xx:xx; the TAP name's length and
/// the namespace are checked with the rest of the VM config.
NetConfig parse_net_spec(const std::string& spec);

}  // namespace forkvm::cli
