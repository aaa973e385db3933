// Writing an output file so that readers never see a partial one.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace forkvm {

/// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
/// fsync'd, given mode 0644 and renamed over `path`. On failure the temporary file is removed
/// and ImageError naming `path` is thrown.
void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace forkvm
