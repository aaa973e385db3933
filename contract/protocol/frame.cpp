#include "contract/protocol/frame.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace forkvm::protocol {
namespace {

/// Overwrites `n` bytes that held peer data; explicit_bzero, which the compiler may not drop.
void wipe(std::uint8_t* p, std::size_t n) noexcept {
  if (n > 0) ::explicit_bzero(p, n);
}

using Kind = ProtocolErrorKind;

void put_u32_le(std::string& out, std::uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8) {
    out.push_back(static_cast<char>((value >> shift) & 0xFFu));
  }
}

std::uint32_t get_u32_le(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

std::string too_large(std::string_view what, std::uint64_t len, std::uint32_t limit) {
  return std::string(what) + " is " + std::to_string(len) + " bytes, limit " +
         std::to_string(limit);
}

// "id" must be an integer in [0, 2^64). nlohmann stores parsed non-negative integers as
// unsigned, but a header built in C++ from a literal (json{{"id", 7}}) holds a signed one.
bool is_u64(const nlohmann::json& value) {
  if (value.is_number_unsigned()) return true;
  return value.is_number_integer() && value.get<std::int64_t>() >= 0;
}

}  // namespace

void validate_header(const nlohmann::json& header) {
  if (!header.is_object()) {
    throw ProtocolError(Kind::NotAnObject,
                        std::string("header is a JSON ") + header.type_name() + ", not an object");
  }
  const auto type = header.find("type");
  if (type == header.end()) throw ProtocolError(Kind::MissingType, "header has no \"type\"");
  if (!type->is_string()) {
    throw ProtocolError(Kind::MissingType,
                        std::string("\"type\" is a ") + type->type_name() + ", not a string");
  }
  if (type->get_ref<const std::string&>().empty()) {
    throw ProtocolError(Kind::MissingType, "\"type\" is empty");
  }
  const auto id = header.find("id");
  if (id == header.end()) throw ProtocolError(Kind::MissingId, "header has no \"id\"");
  if (!is_u64(*id)) {
    throw ProtocolError(Kind::MissingId, "\"id\" is not a non-negative integer (got " +
                                             std::string(id->type_name()) + ")");
  }
}

std::string encode(const Frame& frame, const Limits& limits) {
  validate_header(frame.header);
  std::string json;
  try {
    json = frame.header.dump();  // strict: throws on invalid UTF-8 in strings
  } catch (const nlohmann::json::exception& e) {
    throw ProtocolError(Kind::BadJson, std::string("header cannot be serialised: ") + e.what());
  }
  if (json.size() > limits.max_header_len) {
    throw ProtocolError(Kind::HeaderTooLarge,
                        too_large("header", json.size(), limits.max_header_len));
  }
  if (frame.payload.size() > limits.max_payload_len) {
    throw ProtocolError(Kind::PayloadTooLarge,
                        too_large("payload", frame.payload.size(), limits.max_payload_len));
  }
  std::string out;
  out.reserve(kFixedHeaderSize + json.size() + frame.payload.size());
  out.append(reinterpret_cast<const char*>(kMagic), sizeof kMagic);
  // Both sizes were checked against u32 limits just above.
  put_u32_le(out, static_cast<std::uint32_t>(json.size()));
  put_u32_le(out, static_cast<std::uint32_t>(frame.payload.size()));
  out += json;
  out += frame.payload;
  return out;
}

void FrameDecoder::throw_if_poisoned() const {
  if (error_) throw *error_;
}

void FrameDecoder::fail(ProtocolErrorKind kind, const std::string& message) {
  poison(ProtocolError(kind, message));
}

FrameDecoder::~FrameDecoder() { wipe(buffer_.data(), buffer_.size()); }

FrameDecoder& FrameDecoder::operator=(FrameDecoder&& other) noexcept {
  if (this != &other) {
    wipe(buffer_.data(), buffer_.size());
    limits_ = other.limits_;
    buffer_ = std::move(other.buffer_);
    pos_ = std::exchange(other.pos_, 0);
    error_ = std::move(other.error_);
  }
  return *this;
}

void FrameDecoder::poison(const ProtocolError& error) {
  error_.emplace(error);
  wipe(buffer_.data(), buffer_.size());
  buffer_.clear();
  buffer_.shrink_to_fit();
  pos_ = 0;
  throw *error_;
}

void FrameDecoder::feed(std::span<const std::uint8_t> bytes) {
  throw_if_poisoned();
  // Reclaim consumed bytes before growing, so a long-lived connection's buffer stays at about
  // one frame plus one chunk.
  if (pos_ > 0 && (pos_ == buffer_.size() || pos_ >= buffer_.size() / 2)) {
    // By hand rather than erase(), which would leave the old copies of the pending bytes
    // beyond the new end.
    const std::size_t pending = buffer_.size() - pos_;
    std::memmove(buffer_.data(), buffer_.data() + pos_, pending);
    wipe(buffer_.data() + pending, buffer_.size() - pending);
    buffer_.resize(pending);
    pos_ = 0;
  }
  if (bytes.size() > buffer_.capacity() - buffer_.size()) {
    // Grown by hand too, so that the outgrown block is wiped before it is freed.
    std::vector<std::uint8_t> bigger;
    bigger.reserve(std::max(buffer_.capacity() * 2, buffer_.size() + bytes.size()));
    bigger.assign(buffer_.begin(), buffer_.end());
    wipe(buffer_.data(), buffer_.size());
    buffer_.swap(bigger);
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  // Reject a bad magic or an oversized frame as soon as its fixed header arrives.
  (void)check_fixed_header();
}

void FrameDecoder::feed(std::string_view bytes) {
  feed(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                     bytes.size()));
}

std::optional<FrameDecoder::FixedHeader> FrameDecoder::check_fixed_header() {
  const std::size_t avail = buffer_.size() - pos_;
  const std::uint8_t* p = buffer_.data() + pos_;
  // Peer-controlled: the magic is checked byte by byte as it arrives, so garbage is rejected
  // from its first byte.
  const std::size_t magic_seen = std::min(avail, sizeof kMagic);
  if (magic_seen > 0 && std::memcmp(p, kMagic, magic_seen) != 0) {
    fail(Kind::BadMagic, "frame does not start with \"FKVM\"");
  }
  if (avail < kFixedHeaderSize) return std::nullopt;
  const FixedHeader fixed{get_u32_le(p + 4), get_u32_le(p + 8)};
  // Peer-controlled: both lengths are checked here, before anything is sized from them.
  if (fixed.header_len == 0) fail(Kind::EmptyHeader, "header_len is 0");
  if (fixed.header_len > limits_.max_header_len) {
    fail(Kind::HeaderTooLarge, too_large("header_len", fixed.header_len, limits_.max_header_len));
  }
  if (fixed.payload_len > limits_.max_payload_len) {
    fail(Kind::PayloadTooLarge,
         too_large("payload_len", fixed.payload_len, limits_.max_payload_len));
  }
  return fixed;
}

std::optional<Frame> FrameDecoder::next() {
  throw_if_poisoned();
  const auto fixed = check_fixed_header();
  if (!fixed) return std::nullopt;
  // Both lengths are within u32 limits, so the sum cannot overflow 64 bits.
  const std::uint64_t total = std::uint64_t{kFixedHeaderSize} + fixed->header_len +
                              fixed->payload_len;
  if (buffer_.size() - pos_ < total) return std::nullopt;

  const std::uint8_t* json_begin = buffer_.data() + pos_ + kFixedHeaderSize;
  const std::uint8_t* json_end = json_begin + fixed->header_len;
  Frame frame;
  try {
    // No exceptions, no callback: invalid JSON (including invalid UTF-8) comes back as
    // "discarded". nlohmann's parser is iterative, so deep nesting cannot overflow the stack.
    frame.header = nlohmann::json::parse(json_begin, json_end, nullptr, false);
  } catch (const nlohmann::json::exception& e) {
    fail(Kind::BadJson, std::string("header is not valid JSON: ") + e.what());
  }
  if (frame.header.is_discarded()) fail(Kind::BadJson, "header is not valid JSON");
  try {
    validate_header(frame.header);
  } catch (const ProtocolError& e) {
    poison(e);
  }
  frame.payload.assign(reinterpret_cast<const char*>(json_end), fixed->payload_len);
  wipe(buffer_.data() + pos_, static_cast<std::size_t>(total));  // the frame is the caller's now
  pos_ += static_cast<std::size_t>(total);
  return frame;
}

}  // namespace forkvm::protocol
