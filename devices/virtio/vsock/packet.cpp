#include "devices/virtio/vsock/packet.hpp"

#include <cstring>

namespace forkvm::vsock {
namespace {

// Field offsets inside the packed header (virtio 1.2 §5.10.6).
constexpr size_t kOffSrcCid = 0;
constexpr size_t kOffDstCid = 8;
constexpr size_t kOffSrcPort = 16;
constexpr size_t kOffDstPort = 20;
constexpr size_t kOffLen = 24;
constexpr size_t kOffType = 28;
constexpr size_t kOffOp = 30;
constexpr size_t kOffFlags = 32;
constexpr size_t kOffBufAlloc = 36;
constexpr size_t kOffFwdCnt = 40;
static_assert(kOffFwdCnt + 4 == kHeaderBytes);

template <typename T>
void put_le(HeaderBytes& b, size_t off, T v) noexcept {
  for (size_t i = 0; i < sizeof(T); ++i) {
    b[off + i] = static_cast<uint8_t>(v >> (8 * i));
  }
}

template <typename T>
T get_le(const HeaderBytes& b, size_t off) noexcept {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v = static_cast<T>(v | static_cast<T>(static_cast<T>(b[off + i]) << (8 * i)));
  }
  return v;
}

}  // namespace

HeaderBytes encode(const Header& h) noexcept {
  HeaderBytes b{};
  put_le(b, kOffSrcCid, h.src_cid);
  put_le(b, kOffDstCid, h.dst_cid);
  put_le(b, kOffSrcPort, h.src_port);
  put_le(b, kOffDstPort, h.dst_port);
  put_le(b, kOffLen, h.len);
  put_le(b, kOffType, h.type);
  put_le(b, kOffOp, h.op);
  put_le(b, kOffFlags, h.flags);
  put_le(b, kOffBufAlloc, h.buf_alloc);
  put_le(b, kOffFwdCnt, h.fwd_cnt);
  return b;
}

Header decode(const HeaderBytes& b) noexcept {
  Header h;
  h.src_cid = get_le<uint64_t>(b, kOffSrcCid);
  h.dst_cid = get_le<uint64_t>(b, kOffDstCid);
  h.src_port = get_le<uint32_t>(b, kOffSrcPort);
  h.dst_port = get_le<uint32_t>(b, kOffDstPort);
  h.len = get_le<uint32_t>(b, kOffLen);
  h.type = get_le<uint16_t>(b, kOffType);
  h.op = get_le<uint16_t>(b, kOffOp);
  h.flags = get_le<uint32_t>(b, kOffFlags);
  h.buf_alloc = get_le<uint32_t>(b, kOffBufAlloc);
  h.fwd_cnt = get_le<uint32_t>(b, kOffFwdCnt);
  return h;
}

std::string_view to_string(PacketError e) noexcept {
  switch (e) {
    case PacketError::kNone: return "ok";
    case PacketError::kTruncated: return "header truncated";
    case PacketError::kBadSrcCid: return "src_cid is not the guest's CID";
    case PacketError::kBadDstCid: return "dst_cid is not the host (2)";
    case PacketError::kBadType: return "type is not STREAM";
    case PacketError::kBadOp: return "unknown op";
    case PacketError::kLenTooLarge: return "len above 64 KiB";
    case PacketError::kLenPastChain: return "len past the end of the chain";
    case PacketError::kLenOnControl: return "payload on a control packet";
  }
  return "unknown";
}

PacketError validate_tx(const Header& h, uint64_t guest_cid, size_t payload_available) noexcept {
  // Guest-controlled: every field below.
  if (h.src_cid != guest_cid) return PacketError::kBadSrcCid;
  if (h.dst_cid != kHostCid) return PacketError::kBadDstCid;
  if (h.type != type::kStream) return PacketError::kBadType;
  if (h.op < op::kRequest || h.op > op::kCreditRequest) return PacketError::kBadOp;
  if (h.len > kMaxPayload) return PacketError::kLenTooLarge;
  if (h.len > payload_available) return PacketError::kLenPastChain;
  if (h.len != 0 && h.op != op::kRw) return PacketError::kLenOnControl;
  return PacketError::kNone;
}

Verdict verdict_for(PacketError e, const Header& h) noexcept {
  switch (e) {
    case PacketError::kNone: return Verdict::kAccept;
    case PacketError::kTruncated:
    case PacketError::kBadSrcCid:
    case PacketError::kBadDstCid: return Verdict::kDrop;
    default: return h.op == op::kRst ? Verdict::kDrop : Verdict::kRst;
  }
}

}  // namespace forkvm::vsock
