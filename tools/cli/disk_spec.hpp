// The --disk option of `forkvm run`, `forkvm boot` and `forkvm snapshot create`:
// PATH[:ro|:rw|:cow][,id=ID], as a DiskConfig.
#pragma once

#include <string>

#include "forkvm/vm.hpp"

namespace forkvm::cli {

/// The usage line for --disk.
extern const char* const kDiskUsage;

/// Parses one --disk value. Throws UsageError for an empty path, an unknown ",key=" part or an
/// empty id; the id's characters and length are checked with the rest of the VM config.
DiskConfig parse_disk_spec(const std::string& spec);

}  // namespace forkvm::cli
