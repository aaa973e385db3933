// Seeded random inputs: the decoder must never crash, hang or throw anything but
// ProtocolError, whatever it is fed and however the bytes are split.

#include "contract/protocol/frame.hpp"

#include <gtest/gtest.h>

#include <random>

namespace forkvm::protocol {
namespace {

// Feeds `bytes` in random chunks, draining after each; true if a ProtocolError ended it.
// Any other exception escapes and fails the test.
bool drain(const std::string& bytes, std::mt19937& rng, Limits limits) {
  FrameDecoder decoder(limits);
  std::size_t pos = 0;
  try {
    while (pos < bytes.size()) {
      const std::size_t chunk = std::uniform_int_distribution<std::size_t>(1, 64)(rng);
      const std::size_t n = std::min(chunk, bytes.size() - pos);
      decoder.feed(std::string_view(bytes).substr(pos, n));
      pos += n;
      while (auto frame = decoder.next()) {
        EXPECT_TRUE(frame->header.is_object());
        EXPECT_LE(frame->payload.size(), limits.max_payload_len);
      }
    }
  } catch (const ProtocolError&) {
    EXPECT_TRUE(decoder.poisoned());
    EXPECT_THROW((void)decoder.next(), ProtocolError);
    return true;
  }
  return false;
}

std::string random_bytes(std::mt19937& rng, std::size_t n) {
  std::string out(n, '\0');
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& c : out) c = static_cast<char>(byte(rng));
  return out;
}

TEST(FrameFuzz, RandomBytesOnlyEverThrowProtocolError) {
  std::mt19937 rng(12345);
  const Limits limits{256, 256};
  for (int i = 0; i < 3000; ++i) {
    const auto len = std::uniform_int_distribution<std::size_t>(0, 300)(rng);
    std::string bytes = random_bytes(rng, len);
    // Half the buffers start with the magic so the length and JSON paths are reached too.
    if (i % 2 == 0) bytes = std::string("FKVM") + bytes;
    (void)drain(bytes, rng, limits);
  }
}

TEST(FrameFuzz, MutatedValidStreamsOnlyEverThrowProtocolError) {
  std::mt19937 rng(6789);
  const Limits limits{512, 512};
  std::string stream;
  for (std::uint64_t id = 0; id < 8; ++id) {
    Frame frame{{{"type", "exec"}, {"id", id}, {"argv", {"/bin/sh", "-c", "true"}}},
                std::string(id * 7, static_cast<char>(id))};
    stream += encode(frame, limits);
  }
  int errors = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = stream;
    const int flips = std::uniform_int_distribution<int>(1, 4)(rng);
    for (int f = 0; f < flips; ++f) {
      const auto at = std::uniform_int_distribution<std::size_t>(0, bytes.size() - 1)(rng);
      bytes[at] = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
    }
    if (i % 3 == 0) bytes.resize(std::uniform_int_distribution<std::size_t>(0, bytes.size())(rng));
    errors += drain(bytes, rng, limits) ? 1 : 0;
  }
  EXPECT_GT(errors, 0);  // the mutations do reach the error paths
}

}  // namespace
}  // namespace forkvm::protocol
