// The --add-dir option of `forkvm run`: HOST:GUEST[:ro|:rw], as a HostDir.
#pragma once

#include <string>

#include "forkvm/sandbox.hpp"

namespace forkvm::cli {

/// Parses one --add-dir value: the host directory, the guest mount point, and an optional
/// :ro (the default) or :rw. Throws UsageError for an empty part or a missing guest path (a
/// host path with ':' cannot be given); the paths themselves are checked by the sandbox.
HostDir parse_add_dir_spec(const std::string& spec);

}  // namespace forkvm::cli
