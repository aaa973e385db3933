// Reading small pseudo-files (/proc, /sys), whose stat() size is 0, until end of file.
#pragma once

#include <optional>
#include <string>

namespace forkvm {

/// The whole contents of `path`, or nullopt (errno set) when it cannot be opened or read.
std::optional<std::string> read_file(const char* path);

}  // namespace forkvm
