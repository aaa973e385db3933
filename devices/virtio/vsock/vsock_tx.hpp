// One guest TX packet, from its descriptor chain to the muxer: the header read and checked
// (validate_tx), the payload copied out of guest RAM, and the verdict applied. The worker calls
// it for every chain it pops from the TX queue; tests/fuzz drives it over in-memory guest RAM.
#pragma once

#include <cstdint>
#include <span>

#include "devices/virtio/vsock/connection.hpp"

namespace forkvm {
class DescriptorChain;
class GuestMemory;
}  // namespace forkvm

namespace forkvm::vsock {

class VsockMuxer;

/// Handles the TX chain `chain` of the device with `guest_cid`: an accepted packet goes to
/// `muxer` (on_guest_packet), a refused one is answered as verdict_for() says (muxer.refuse or
/// dropped). `payload_buf` holds the copied payload and must have at least kMaxPayload bytes.
/// Returns false when the packet was refused (dropped or answered with RST), true otherwise.
/// Never throws except std::bad_alloc (from the muxer's connection buffers).
bool handle_tx_chain(const GuestMemory& mem, const DescriptorChain& chain, uint64_t guest_cid,
                     VsockMuxer& muxer, std::span<uint8_t> payload_buf, Clock::time_point now);

}  // namespace forkvm::vsock
