// Deterministic gzip (RFC 1952) compression for initramfs images: the header carries mtime 0,
// no file name, OS "Unix", and the compression level is fixed, so the same input always gives
// the same bytes with a given zlib.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace forkvm {

/// Compresses `data` into a single gzip member at level 9. Throws ImageError (naming
/// "<gzip>") if zlib fails, which only happens when memory runs out.
std::vector<uint8_t> gzip_compress(std::span<const uint8_t> data);

}  // namespace forkvm
