#include "devices/virtio/vsock/vsock_tx.hpp"

#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/vsock/muxer.hpp"
#include "devices/virtio/vsock/packet.hpp"

namespace forkvm::vsock {

bool handle_tx_chain(const GuestMemory& mem, const DescriptorChain& chain, uint64_t guest_cid,
                     VsockMuxer& muxer, std::span<uint8_t> payload_buf, Clock::time_point now) {
  Reader reader(mem, chain);
  HeaderBytes raw{};
  if (!reader.read_exact(raw)) return false;  // truncated: nothing to answer to
  const Header h = decode(raw);
  // Guest-controlled: the whole header; validate_tx checks it against the chain's length, and
  // h.len against kMaxPayload, the least payload_buf holds.
  PacketError err = validate_tx(h, guest_cid, reader.available());
  std::span<const uint8_t> payload;
  if (err == PacketError::kNone && h.len > 0) {
    auto buf = payload_buf.first(h.len);
    if (!reader.read_exact(buf)) err = PacketError::kLenPastChain;
    payload = buf;
  }
  switch (verdict_for(err, h)) {
    case Verdict::kAccept:
      muxer.on_guest_packet(h, payload, now);
      return true;
    case Verdict::kRst:
      muxer.refuse(h);
      return false;
    case Verdict::kDrop:
      return false;
  }
  return false;
}

}  // namespace forkvm::vsock
