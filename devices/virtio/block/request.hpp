// One virtio-blk request: validated where it enters, executed against the disk, answered
// with a status byte (virtio 1.2 §5.2.6). The chain was already walked and bounds-checked by the
// queue (DescriptorChain); what is checked here is the request itself:
// - a 16-byte header in the device-readable part, and a status byte as the last device-writable
//   byte (a chain without one cannot be answered: it is returned with nothing written);
// - the data's direction (IN writes into device-writable buffers, OUT reads readable ones, and
//   nothing else may be in the request), a length of whole sectors, and a sector range inside
//   the disk with every sum overflow-checked;
// - a read-only disk refuses OUT, DISCARD and WRITE_ZEROES with IOERR; unknown types get UNSUPP.
// Nothing here throws or allocates more than one bounce buffer of at most kChunkBytes.
#pragma once

#include <cstdint>
#include <string>

namespace forkvm {

class DescriptorChain;
class BlockBackend;
class GuestMemory;

namespace blk {

/// Bytes moved between guest memory and the file per pread/pwrite.
inline constexpr uint64_t kChunkBytes = 256 * 1024;

/// What the device does with requests, counted for tests and reports.
struct RequestCounters {
  uint64_t reads = 0, writes = 0, flushes = 0, get_ids = 0, discards = 0, write_zeroes = 0;
  uint64_t io_errors = 0;    ///< answered IOERR (bad request or host I/O error)
  uint64_t unsupported = 0;  ///< answered UNSUPP
  uint64_t unanswerable = 0; ///< no status byte: returned with nothing written
};

/// The device's side of a request.
struct RequestContext {
  const GuestMemory* memory = nullptr;
  BlockBackend* disk = nullptr;
  /// The disk's serial for GET_ID (at most kIdBytes are sent).
  std::string id;
  /// Whether DISCARD / WRITE_ZEROES were offered (and so may be executed).
  bool discard = false;
  bool write_zeroes = false;
  RequestCounters* counters = nullptr;
};

/// Validates and executes the request in `chain`, writes its status byte, and returns the
/// number of bytes written into device-writable buffers (the used ring's `len`).
uint32_t handle_request(const RequestContext& ctx, const DescriptorChain& chain) noexcept;

}  // namespace blk
}  // namespace forkvm
