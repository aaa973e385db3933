// The virtio-vsock packet header (virtio 1.2 §5.10.6, struct virtio_vsock_hdr): its constants,
// a little-endian codec, and the checks every header from the guest's TX queue passes before
// the device acts on it. Pure: no sockets, no guest memory.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace forkvm::vsock {

/// The host's well-known CID (virtio 1.2 §5.10.4: VMADDR_CID_HOST).
inline constexpr uint64_t kHostCid = 2;
/// Bytes of struct virtio_vsock_hdr on the wire (packed, little-endian; virtio 1.2 §5.10.6).
inline constexpr size_t kHeaderBytes = 44;
/// Largest payload one packet may carry in either direction (Linux and Firecracker:
/// VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). A guest header asking for more is refused.
inline constexpr uint32_t kMaxPayload = 64 * 1024;

/// Feature bits of the socket device (virtio 1.2 §5.10.3).
namespace feature {
inline constexpr uint64_t kStream = 1ull << 0;     ///< VIRTIO_VSOCK_F_STREAM
inline constexpr uint64_t kSeqpacket = 1ull << 1;  ///< VIRTIO_VSOCK_F_SEQPACKET (never offered)
}  // namespace feature

/// Socket types (virtio 1.2 §5.10.6 `type`).
namespace type {
inline constexpr uint16_t kStream = 1;     ///< VIRTIO_VSOCK_TYPE_STREAM
inline constexpr uint16_t kSeqpacket = 2;  ///< VIRTIO_VSOCK_TYPE_SEQPACKET (refused with RST)
}  // namespace type

/// Operations (virtio 1.2 §5.10.6 `op`).
namespace op {
inline constexpr uint16_t kInvalid = 0;
inline constexpr uint16_t kRequest = 1;        ///< connect
inline constexpr uint16_t kResponse = 2;       ///< connection accepted
inline constexpr uint16_t kRst = 3;            ///< connection refused or aborted
inline constexpr uint16_t kShutdown = 4;       ///< half or full close, see shutdown flags
inline constexpr uint16_t kRw = 5;             ///< payload bytes
inline constexpr uint16_t kCreditUpdate = 6;   ///< "here is my buf_alloc/fwd_cnt"
inline constexpr uint16_t kCreditRequest = 7;  ///< "send me a credit update"
}  // namespace op

/// OP_SHUTDOWN flags (virtio 1.2 §5.10.6.5).
namespace shutdown {
inline constexpr uint32_t kRcv = 1;   ///< the sender will receive no more data
inline constexpr uint32_t kSend = 2;  ///< the sender will send no more data
inline constexpr uint32_t kBoth = kRcv | kSend;
}  // namespace shutdown

/// A decoded virtio_vsock_hdr, fields in host byte order. From the host's point of view a
/// packet the device builds has src = host (CID 2), dst = guest.
struct Header {
  uint64_t src_cid = 0;
  uint64_t dst_cid = 0;
  uint32_t src_port = 0;
  uint32_t dst_port = 0;
  uint32_t len = 0;  ///< payload bytes that follow the header
  uint16_t type = 0;
  uint16_t op = 0;
  uint32_t flags = 0;
  uint32_t buf_alloc = 0;  ///< sender's total receive buffer (credit, §5.10.6.3)
  uint32_t fwd_cnt = 0;    ///< bytes the sender has consumed so far, free-running

  friend bool operator==(const Header&, const Header&) = default;
};

/// The wire form of a header.
using HeaderBytes = std::array<uint8_t, kHeaderBytes>;

/// Encodes `h` little-endian, packed (virtio 1.2 §5.10.6).
HeaderBytes encode(const Header& h) noexcept;
/// Decodes a packed little-endian header.
Header decode(const HeaderBytes& bytes) noexcept;

/// Why a header from the guest's TX queue was refused.
enum class PacketError : uint8_t {
  kNone = 0,
  kTruncated,      ///< the chain holds fewer than kHeaderBytes readable bytes
  kBadSrcCid,      ///< src_cid is not the guest's own CID (spoofing)
  kBadDstCid,      ///< dst_cid is not the host: this device only reaches CID 2
  kBadType,        ///< not a stream packet (seqpacket is not offered)
  kBadOp,          ///< op is not one of REQUEST..CREDIT_REQUEST
  kLenTooLarge,    ///< len > kMaxPayload
  kLenPastChain,   ///< len exceeds the readable bytes the chain holds after the header
  kLenOnControl,   ///< a non-RW packet carries a payload
};

/// A stable name for logs and metrics.
std::string_view to_string(PacketError e) noexcept;

/// What the device does with a refused packet: the ones that name a plausible connection of
/// this guest get an RST (so the guest socket fails fast instead of hanging), the others are
/// only counted, because an answer would have to go to an address the guest does not own.
enum class Verdict : uint8_t { kAccept, kDrop, kRst };

/// Checks a header read from the guest's TX queue. Every field is guest-controlled:
/// - src_cid must equal `guest_cid` and dst_cid must be kHostCid (both full 64 bits: the upper
///   32 bits are reserved and zero, virtio 1.2 §5.10.4);
/// - type must be STREAM;
/// - op must be known;
/// - len must be <= kMaxPayload and <= `payload_available` (the readable bytes left in the chain
///   after the header), and zero unless op is RW.
/// Returns kNone or the first failing rule, in the order listed.
PacketError validate_tx(const Header& h, uint64_t guest_cid, size_t payload_available) noexcept;

/// The verdict for a validate_tx() result. CID faults are dropped; type/op/len faults on a
/// packet that is not itself an RST get an RST; RSTs are never answered.
Verdict verdict_for(PacketError e, const Header& h) noexcept;

}  // namespace forkvm::vsock
