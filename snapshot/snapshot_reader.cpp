// open_snapshot(): every file in the directory is hostile input. Sizes are checked with fstat
// before anything is read, the state digest before state.json is parsed, and the memory file's
// length before it is hashed or mapped.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "forkvm/errors.hpp"
#include "memory/memory_image.hpp"
#include "snapshot/file_io.hpp"
#include "snapshot/memory_digest.hpp"
#include "snapshot/sha256.hpp"
#include "snapshot/snapshot.hpp"

namespace forkvm::snapshot {
namespace {

namespace fs = std::filesystem;

/// "<64 hex>  state.json\n" is 77 bytes; anything much larger is not a digest file.
constexpr off_t kMaxDigestFileBytes = 256;

std::string read_state_digest(int fd, const fs::path& path, const struct stat& st) {
  if (st.st_size > kMaxDigestFileBytes) {
    fail(path, "is " + std::to_string(st.st_size) + " bytes, too large for a digest file");
  }
  std::string text = read_exact(fd, path, static_cast<uint64_t>(st.st_size));
  // Accepted: "<hex>" or sha256sum's "<hex>  state.json", either with one trailing newline.
  if (!text.empty() && text.back() == '\n') text.pop_back();
  const std::string suffix = std::string("  ") + kStateFile;
  if (text.size() == 64 + suffix.size() && text.ends_with(suffix)) text.resize(64);
  if (!is_sha256_hex(text)) {
    fail(path,
         "does not hold a SHA-256 of state.json (64 lowercase hex digits, optionally "
         "followed by '  state.json')");
  }
  return text;
}

void check_memory_size(const fs::path& path, const struct stat& st, uint64_t expected) {
  const auto actual = static_cast<uint64_t>(st.st_size);
  if (actual < expected) {
    fail(path, "is truncated: " + std::to_string(actual) + " bytes, but state.json says " +
                   std::to_string(expected));
  }
  if (actual > expected) {
    fail(path, "is " + std::to_string(actual) + " bytes, longer than the " +
                   std::to_string(expected) + " that state.json says");
  }
}

// The verified memory: a sealed memfd holding the bytes that were hashed. The digest then
// covers exactly what VMs will map, and nobody can truncate or rewrite it under them: a
// snapshot file changed or truncated later cannot SIGBUS this process or alter a guest.
Fd verified_copy(int fd, const State& state, const fs::path& path) {
  Fd copy;
  try {
    copy = create_sized_memfd("forkvm-snapshot-ram", state.memory_size);
  } catch (const Error& e) {
    fail(path, std::string("cannot copy the memory file: ") + e.what());
  }
  if (state.memory_chunks) {
    // Format 2 (and 1.4): chunk by chunk, the all-hole ones without reading them, the rest on
    // several threads (memory_digest.hpp).
    verify_chunks(fd, state.memory_size, *state.memory_chunks, path, copy.get(), verify_threads());
  } else {
    const std::string sha = hash_file(fd, state.memory_size, path, copy.get());
    if (sha != state.memory_sha256) {
      fail(path, "SHA-256 mismatch: state.json says " + state.memory_sha256 +
                     ", the file hashes to " + sha + " (corrupt or modified)");
    }
  }
  try {
    add_memfd_seals(copy.get(), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL,
                    "the snapshot's memory copy");
  } catch (const Error& e) {
    fail(path, e.what());
  }
  return copy;
}

}  // namespace

std::string hash_memory_file(int fd, uint64_t size, const fs::path& path) {
  return hash_file(fd, size, path, -1);
}

SnapshotFiles open_snapshot(const fs::path& dir, const OpenOptions& options) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) fail(dir, "snapshot directory does not exist");
    fail_errno(dir, "cannot stat snapshot directory", errno);
  }
  if (!S_ISDIR(st.st_mode)) fail(dir, "is not a directory");
  check_private(dir, "snapshot directory", st);

  const fs::path digest_path = dir / kStateDigestFile;
  const fs::path state_path = dir / kStateFile;
  const fs::path memory_path = dir / kMemoryFile;
  struct stat digest_st {
  }, state_st{}, memory_st{};
  const Fd digest_fd = open_regular_file(digest_path, "state digest file", digest_st);
  const Fd state_fd = open_regular_file(state_path, "state file", state_st);
  Fd memory_fd = open_regular_file(memory_path, "memory file", memory_st);

  const std::string expected_state_sha = read_state_digest(digest_fd.get(), digest_path, digest_st);
  if (static_cast<uint64_t>(state_st.st_size) > options.max_state_bytes) {
    fail(state_path, "is " + std::to_string(state_st.st_size) + " bytes, over the limit of " +
                         std::to_string(options.max_state_bytes));
  }
  const std::string text =
      read_exact(state_fd.get(), state_path, static_cast<uint64_t>(state_st.st_size));
  const std::string state_sha = Sha256::of(text);
  if (state_sha != expected_state_sha) {
    fail(state_path, "SHA-256 mismatch: " + std::string(kStateDigestFile) + " says " +
                         expected_state_sha + ", the file hashes to " + state_sha +
                         " (corrupt or modified)");
  }

  SnapshotFiles files;
  files.dir = dir;
  files.state = parse_state(text, state_path.string());
  files.state_sha256 = state_sha;
  check_memory_size(memory_path, memory_st, files.state.memory_size);
  files.memory_allocated = static_cast<uint64_t>(memory_st.st_blocks) * 512;
  if (options.verify_memory) {
    files.memory_fd = verified_copy(memory_fd.get(), files.state, memory_path);
    files.memory_verified = true;
  } else {
    files.memory_fd = std::move(memory_fd);
  }
  return files;
}

}  // namespace forkvm::snapshot
