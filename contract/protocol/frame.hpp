#pragma once

// Framing of the host <-> agent protocol over a vsock stream (contract/protocol/README.md):
//   [magic "FKVM"][u32 LE header_len][u32 LE payload_len][header_len bytes JSON][payload bytes]

#include "contract/protocol/protocol_error.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace forkvm::protocol {

/// The 4 bytes every frame starts with, in wire order: 'F' 'K' 'V' 'M'.
inline constexpr std::uint8_t kMagic[4] = {'F', 'K', 'V', 'M'};

/// Size of the fixed frame header: magic, header_len, payload_len.
inline constexpr std::size_t kFixedHeaderSize = 12;

/// Per-frame size limits. Both sides enforce them; a frame over a limit is rejected from its
/// fixed header alone, before any of its data is buffered.
struct Limits {
  /// Maximum JSON header length in bytes (default 64 KiB).
  std::uint32_t max_header_len = 64 * 1024;
  /// Maximum raw payload length in bytes (default 1 MiB); bigger streams use many frames.
  std::uint32_t max_payload_len = 1024 * 1024;
};

/// One protocol message: a JSON object header (at least "type": string and "id": u64) and an
/// optional raw binary payload (bulk data is never base64-encoded into the header).
struct Frame {
  /// The JSON header, e.g. {"type":"exec","id":7,...}.
  nlohmann::json header;
  /// Raw payload bytes; may contain any byte value, including NUL.
  std::string payload;
};

/// Checks that `header` is an object with a non-empty string "type" and a non-negative
/// integer "id". Throws ProtocolError (NotAnObject, MissingType, MissingId).
void validate_header(const nlohmann::json& header);

/// Serialises `frame` to its wire form. Throws ProtocolError if the header is invalid
/// (see validate_header), cannot be serialised (invalid UTF-8: BadJson), or either part is
/// over `limits`.
[[nodiscard]] std::string encode(const Frame& frame, const Limits& limits = {});

/// Incremental decoder for one connection's byte stream. Feed it chunks of any size, split
/// anywhere, and pull complete frames with next().
///
/// The first error poisons it: that call and every later feed()/next() throw the same
/// ProtocolError, and the connection should be closed. It never allocates on the strength of
/// a length it has not checked against Limits, and never reads past the bytes it was given.
/// It buffers whatever it is fed: a caller should call next() after each feed().
///
/// Frames may carry secrets (set_secret), and the agent's memory is in every snapshot and fork
/// of its VM: every byte the decoder held is overwritten once it is done with it (a frame as
/// it is returned, a buffer it outgrew, what it holds when poisoned or destroyed).
class FrameDecoder {
 public:
  /// A decoder enforcing `limits`.
  explicit FrameDecoder(Limits limits = {}) : limits_(limits) {}
  ~FrameDecoder();
  FrameDecoder(FrameDecoder&& other) noexcept = default;
  /// Wipes this decoder's bytes before taking `other`'s.
  FrameDecoder& operator=(FrameDecoder&& other) noexcept;
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;

  /// Appends `bytes` to the stream. Throws the poisoning ProtocolError if the decoder is
  /// poisoned or the bytes make the pending frame's fixed header invalid.
  void feed(std::span<const std::uint8_t> bytes);

  /// Convenience overload for byte strings.
  void feed(std::string_view bytes);

  /// The next complete frame, or nullopt if more bytes are needed. Throws ProtocolError (and
  /// poisons the decoder) on a malformed frame.
  [[nodiscard]] std::optional<Frame> next();

  /// True once an error has been thrown; every later call rethrows it.
  [[nodiscard]] bool poisoned() const noexcept { return error_.has_value(); }

  /// Bytes fed but not yet returned as frames.
  [[nodiscard]] std::size_t buffered() const noexcept { return buffer_.size() - pos_; }

 private:
  struct FixedHeader {
    std::uint32_t header_len;
    std::uint32_t payload_len;
  };

  // Validates whatever part of the pending frame's fixed header has arrived; returns it once
  // all 12 bytes are there.
  std::optional<FixedHeader> check_fixed_header();
  [[noreturn]] void fail(ProtocolErrorKind kind, const std::string& message);
  // Stores `error`, drops the buffer and throws it.
  [[noreturn]] void poison(const ProtocolError& error);
  void throw_if_poisoned() const;

  friend struct FrameDecoderTesting;  // tests: the bytes it holds

  Limits limits_;
  std::vector<std::uint8_t> buffer_;
  std::size_t pos_ = 0;  // start of the pending frame in buffer_
  std::optional<ProtocolError> error_;
};

}  // namespace forkvm::protocol
