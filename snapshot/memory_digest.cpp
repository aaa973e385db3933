#include "snapshot/memory_digest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "base/file_extents.hpp"
#include "base/text.hpp"
#include "base/thread_launcher.hpp"
#include "forkvm/errors.hpp"
#include "snapshot/file_io.hpp"
#include "snapshot/snapshot.hpp"

namespace forkvm::snapshot {
namespace {

namespace fs = std::filesystem;

// Hashes [begin, end) of `fd`, which the caller found to be data; with `copy_fd` >= 0, also
// writes those bytes at the same offsets of `copy_fd`, so the copy holds exactly the bytes
// that were hashed.
void hash_range(Sha256& sha, std::vector<uint8_t>& buf, int fd, uint64_t begin, uint64_t end,
                const fs::path& path, int copy_fd) {
  while (begin < end) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - begin));
    const ssize_t n = pread(fd, buf.data(), want, static_cast<off_t>(begin));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(path, "read failed at offset " + std::to_string(begin), errno);
    }
    if (n == 0) fail(path, "is truncated: it ends at offset " + std::to_string(begin));
    sha.update(std::span(buf.data(), static_cast<size_t>(n)));
    if (copy_fd >= 0) {
      pwrite_all(copy_fd, path, std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)), begin);
    }
    begin += static_cast<uint64_t>(n);
  }
}

/// The data extents of [begin, end) of `fd` (base/file_extents.hpp).
std::vector<FileExtent> data_of(int fd, uint64_t begin, uint64_t end, const fs::path& path) {
  std::vector<FileExtent> out;
  if (const int err = file_data_extents(fd, begin, end, out); err != 0) {
    fail_errno(path, "lseek(SEEK_DATA) failed", err);
  }
  return out;
}

/// Hashes [begin, end) of `fd` into `sha`: its holes as zeros without reading them, its data
/// read (and copied to `copy_fd` when it is >= 0).
void hash_part(Sha256& sha, std::vector<uint8_t>& buf, int fd, uint64_t begin, uint64_t end,
               const fs::path& path, int copy_fd) {
  uint64_t pos = begin;
  for (const FileExtent& e : data_of(fd, begin, end, path)) {
    hash_zeros(sha, e.offset - pos);  // a hole reads as zeros; no need to read it
    hash_range(sha, buf, fd, e.offset, e.offset + e.length, path, copy_fd);
    pos = e.offset + e.length;
  }
  hash_zeros(sha, end - pos);
}

void check_length(int fd, uint64_t size, const fs::path& path) {
  struct stat st {};
  if (fstat(fd, &st) != 0) fail_errno(path, "cannot stat", errno);
  if (static_cast<uint64_t>(st.st_size) < size) {
    fail(path, "is truncated: " + std::to_string(st.st_size) + " bytes, expected " +
                   std::to_string(size));
  }
}

}  // namespace

void hash_zeros(Sha256& sha, uint64_t len) {
  static const std::array<uint8_t, 64 * 1024> kZeros{};
  while (len > 0) {
    const uint64_t n = std::min<uint64_t>(len, kZeros.size());
    sha.update(std::span(kZeros.data(), n));
    len -= n;
  }
}

unsigned verify_threads() noexcept {
  return std::clamp(std::thread::hardware_concurrency(), 1u, kMaxVerifyThreads);
}

std::string zero_digest(uint64_t len) {
  static std::mutex mu;
  static std::map<uint64_t, std::string> known;  // a chunk size and a last chunk's: two entries
  std::lock_guard lock(mu);
  auto it = known.find(len);
  if (it != known.end()) return it->second;
  Sha256 sha;
  hash_zeros(sha, len);
  return known.emplace(len, sha.final_hex()).first->second;
}

ChunkHasher::ChunkHasher(uint64_t total, uint64_t chunk) : total_(total), chunk_(chunk) {
  if (chunk_ == 0) throw SnapshotError("ChunkHasher: a chunk size of 0");
  out_.size = chunk_;
}

void ChunkHasher::data(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    const uint64_t n = std::min<uint64_t>(bytes.size(), chunk_ - pos_ % chunk_);
    feed(bytes.data(), n);
    bytes = bytes.subspan(n);
  }
}

void ChunkHasher::zeros(uint64_t len) {
  while (len > 0) {
    const uint64_t n = std::min<uint64_t>(len, chunk_ - pos_ % chunk_);
    feed(nullptr, n);
    len -= n;
  }
}

void ChunkHasher::feed(const uint8_t* bytes, uint64_t len) {
  if (pos_ + len > total_) throw SnapshotError("ChunkHasher: more bytes than the file holds");
  if (bytes != nullptr) {
    if (pending_zeros_ > 0) hash_zeros(sha_, std::exchange(pending_zeros_, 0));
    sha_.update(std::span(bytes, len));
    has_data_ = true;
  } else {
    pending_zeros_ += len;
  }
  pos_ += len;
  if (pos_ % chunk_ == 0 || pos_ == total_) close_chunk();
}

void ChunkHasher::close_chunk() {
  const uint64_t len = pos_ - (pos_ - 1) / chunk_ * chunk_;  // this chunk's length
  if (!has_data_) {
    out_.sha256.push_back(zero_digest(len));
    pending_zeros_ = 0;
    return;
  }
  if (pending_zeros_ > 0) hash_zeros(sha_, std::exchange(pending_zeros_, 0));
  out_.sha256.push_back(sha_.final_hex());
  sha_ = Sha256();
  has_data_ = false;
}

MemoryChunks ChunkHasher::finish() {
  if (pos_ != total_) {
    throw SnapshotError("ChunkHasher: given " + std::to_string(pos_) + " of " +
                        std::to_string(total_) + " bytes");
  }
  return std::move(out_);
}

std::string hash_file(int fd, uint64_t size, const fs::path& path, int copy_fd) {
  check_length(fd, size, path);
  Sha256 sha;
  std::vector<uint8_t> buf(kIoChunk);
  hash_part(sha, buf, fd, 0, size, path, copy_fd);
  return sha.final_hex();
}

void verify_chunks(int fd, uint64_t size, const MemoryChunks& chunks, const fs::path& path,
                   int copy_fd, unsigned threads) {
  check_length(fd, size, path);
  const uint64_t n = chunks.size == 0 ? 0 : chunk_count(size, chunks.size);
  if (n == 0 || chunks.sha256.size() != n) {
    fail(path, "state.json has " + std::to_string(chunks.sha256.size()) +
                   " chunk digests for " + std::to_string(n) + " chunks");
  }
  auto range = [&](uint64_t i) {
    return std::pair{i * chunks.size, std::min(size, (i + 1) * chunks.size)};
  };
  auto mismatch = [&](uint64_t i, const std::string& actual) {
    const auto [begin, end] = range(i);
    fail(path, "SHA-256 mismatch in bytes [" + hex(begin) + ", " + hex(end) + ") (chunk " +
                   std::to_string(i) + " of " + std::to_string(n) + "): state.json says " +
                   chunks.sha256[i] + ", the file hashes to " + actual + " (corrupt or modified)");
  };
  // Which chunks hold data, from one walk of the file's extents (SEEK_DATA/SEEK_HOLE).
  std::vector<bool> has_data(n, false);
  for (const FileExtent& e : data_of(fd, 0, size, path)) {
    const uint64_t end = e.offset + e.length;
    for (uint64_t c = e.offset / chunks.size; c <= (end - 1) / chunks.size; ++c) has_data[c] = true;
  }
  // All-hole chunks: zeros, which the copy (a fresh memfd) holds already. Should data appear
  // there later, it is not read: what VMs map is the copy, which is what was checked.
  std::vector<uint64_t> work;
  for (uint64_t i = 0; i < n; ++i) {
    if (has_data[i]) {
      work.push_back(i);
      continue;
    }
    const auto [begin, end] = range(i);
    const std::string zero = zero_digest(end - begin);
    if (chunks.sha256[i] != zero) mismatch(i, zero);
  }
  // The chunks with data, shared out among the threads: each hashes and copies whole chunks.
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  std::exception_ptr error;
  auto worker = [&] {
    try {
      std::vector<uint8_t> buf(kIoChunk);
      for (size_t k; !failed.load() && (k = next.fetch_add(1)) < work.size();) {
        const uint64_t i = work[k];
        const auto [begin, end] = range(i);
        Sha256 sha;
        hash_part(sha, buf, fd, begin, end, path, copy_fd);
        const std::string actual = sha.final_hex();
        if (actual != chunks.sha256[i]) mismatch(i, actual);
      }
    } catch (...) {
      std::lock_guard lock(error_mu);
      if (!error) error = std::current_exception();
      failed.store(true);
    }
  };
  const size_t helpers = std::min<size_t>(threads > 0 ? threads - 1 : 0, work.size() / 2);
  std::vector<std::thread> pool;
  pool.reserve(helpers);  // so that no push_back can throw with a started thread in hand
  for (size_t t = 0; t < helpers; ++t) {
    try {
      pool.push_back(start_thread(worker));
    } catch (const std::exception&) {
      break;  // fewer threads: this one does the rest
    }
  }
  worker();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace forkvm::snapshot
