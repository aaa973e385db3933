// The digests of a snapshot's memory file: one SHA-256 per fixed-size chunk (state.json
// memory.chunks: format 2, and optional in 1.4), and the whole file's SHA-256 that format 1
// recorded (memory.sha256). The chunks let the writer and a verified restore skip what they
// never have to read: a chunk of zeros (all hole in the file) has the known digest of that many
// zeros, so it is checked without hashing it, and the chunks that hold data are hashed on
// several threads. A guest's memory file is mostly holes (a 256 MiB sandbox after boot: 19 MiB
// of data), where a whole-file digest hashes every zero.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "snapshot/sha256.hpp"

namespace forkvm::snapshot {

/// The chunk size the writer uses.
inline constexpr uint64_t kMemoryChunkBytes = uint64_t{4} << 20;
/// The chunk sizes a reader accepts (a multiple of 4 KiB in this range): small chunks make a
/// long list, big ones make a hole check coarse.
inline constexpr uint64_t kMinMemoryChunkBytes = uint64_t{64} << 10;
inline constexpr uint64_t kMaxMemoryChunkBytes = uint64_t{1} << 30;

/// state.json memory.chunks: the SHA-256 (64 lowercase hex digits) of each `size`-byte chunk of
/// the memory file in order, the last one possibly shorter.
struct MemoryChunks {
  uint64_t size = 0;
  std::vector<std::string> sha256;
  bool operator==(const MemoryChunks&) const = default;
};

/// How many chunks of `chunk` bytes cover `total` bytes.
constexpr uint64_t chunk_count(uint64_t total, uint64_t chunk) { return (total + chunk - 1) / chunk; }

/// Feeds `len` zero bytes to `sha` (from a static buffer: nothing is read or allocated).
void hash_zeros(Sha256& sha, uint64_t len);
/// The SHA-256 hex of `len` zero bytes, computed once per length in this process.
std::string zero_digest(uint64_t len);

/// The writer's side: takes the memory file's bytes in order (data, or a run of zeros it will
/// leave as a hole) and makes the chunk digests. A chunk that only ever gets zeros takes
/// zero_digest() without being hashed.
class ChunkHasher {
 public:
  /// For a file of `total` bytes in chunks of `chunk` bytes.
  ChunkHasher(uint64_t total, uint64_t chunk = kMemoryChunkBytes);
  void data(std::span<const uint8_t> bytes);
  void zeros(uint64_t len);
  /// Once every byte was given: the digests. Throws SnapshotError when fewer or more were.
  MemoryChunks finish();

 private:
  /// Feeds `len` bytes (data when `bytes` is non-null, else zeros) that lie in one chunk.
  void feed(const uint8_t* bytes, uint64_t len);
  void close_chunk();

  uint64_t total_, chunk_;
  uint64_t pos_ = 0;          // bytes given so far
  uint64_t pending_zeros_ = 0;  // zeros of the current chunk not yet hashed
  bool has_data_ = false;     // the current chunk got data
  Sha256 sha_;
  MemoryChunks out_;
};

/// The SHA-256 of the first `size` bytes of `fd`, read in kIoChunk pieces; holes (SEEK_HOLE)
/// are hashed as zeros without being read. With `copy_fd` >= 0, also writes the data (not the
/// holes) at the same offsets of `copy_fd`, so the copy holds exactly the bytes hashed. Throws
/// SnapshotError naming `path` when the file is shorter than `size` or a read fails.
std::string hash_file(int fd, uint64_t size, const std::filesystem::path& path, int copy_fd);

/// Most threads verify_chunks() is given by the reader and `forkvm snapshot inspect`: hashing
/// runs at about one core per thread, and past a few, reading the file is the limit.
inline constexpr unsigned kMaxVerifyThreads = 4;
/// This host's CPUs, at least 1 and at most kMaxVerifyThreads.
unsigned verify_threads() noexcept;

/// Checks the first `size` bytes of `fd` against `chunks` and copies their data (not the holes)
/// into `copy_fd` at the same offsets (no copy when it is -1): a chunk that is all hole in the
/// file is checked against zero_digest() without being read; the others are hashed (and copied)
/// on up to `threads` threads, which stop at the first mismatch one of them finds. Throws
/// SnapshotError naming `path`, the chunk and its byte range for a mismatch, and for a short
/// file or a failed read or write.
void verify_chunks(int fd, uint64_t size, const MemoryChunks& chunks,
                   const std::filesystem::path& path, int copy_fd, unsigned threads);

}  // namespace forkvm::snapshot
