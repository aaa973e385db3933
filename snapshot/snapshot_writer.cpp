// write_snapshot(): memory first (hashed as it is written), then state.json, which records the
// memory digest, then the digest of state.json; all in a temporary directory renamed into place.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <system_error>

#include "forkvm/errors.hpp"
#include "memory/layout.hpp"
#include "memory/memory_image.hpp"
#include "snapshot/file_io.hpp"
#include "snapshot/memory_digest.hpp"
#include "snapshot/sha256.hpp"
#include "snapshot/snapshot.hpp"

namespace forkvm::snapshot {
namespace {

namespace fs = std::filesystem;

bool all_zero(const uint8_t* p, size_t n) {
  // p[0] == 0 and every byte equals its successor: one memcmp, which glibc vectorises.
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

std::string utc_now_iso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// Removes a temporary directory (and what is in it) unless released.
class TempDir {
 public:
  explicit TempDir(fs::path path) : path_(std::move(path)) {}
  ~TempDir() {
    if (!path_.empty()) {
      std::error_code ec;  // best effort: the original error is the one to report
      fs::remove_all(path_, ec);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const noexcept { return path_; }
  void release() noexcept { path_.clear(); }

 private:
  fs::path path_;
};

/// Writes [host, host + len) at file offset `offset`, hashing each chunk's bytes into `chunks`
/// (an all-zero page given as zeros, unhashed unless its chunk has data), and writing only the
/// runs of pages that are not all zero; the skipped pages stay holes.
void write_data(int fd, const fs::path& path, const uint8_t* host, uint64_t len, uint64_t offset,
                ChunkHasher& chunks) {
  for (uint64_t chunk = 0; chunk < len; chunk += kIoChunk) {
    const uint64_t n = std::min(kIoChunk, len - chunk);
    const uint8_t* base = host + chunk;
    std::optional<uint64_t> run;  // start of the current run of non-zero pages
    for (uint64_t p = 0; p < n; p += layout::kPageSize) {
      const uint64_t page = std::min(layout::kPageSize, n - p);
      const bool zero = all_zero(base + p, page);
      if (zero) {
        chunks.zeros(page);
      } else {
        chunks.data(std::span(base + p, page));
      }
      if (!zero && !run) run = p;
      if (zero && run) {
        pwrite_all(fd, path, std::span(base + *run, p - *run), offset + chunk + *run);
        run.reset();
      }
    }
    if (run) pwrite_all(fd, path, std::span(base + *run, n - *run), offset + chunk + *run);
  }
}

/// Writes `region` at file offset `offset`: the parts `data` (GuestMemory::data_extents(),
/// sorted) says may hold data with write_data(), the rest given to `chunks` as zeros without
/// being read, and left a hole.
void write_region(int fd, const fs::path& path, const GuestMemory::Region& region, uint64_t offset,
                  const std::vector<MemoryImage::Extent>& data, ChunkHasher& chunks) {
  const uint64_t end = offset + region.size;
  uint64_t pos = offset;  // memory-file offset written up to
  for (const MemoryImage::Extent& e : data) {
    const uint64_t a = std::max(e.offset, pos);
    const uint64_t b = std::min(e.offset + e.length, end);
    if (a >= b) {
      if (e.offset >= end) break;
      continue;
    }
    chunks.zeros(a - pos);
    write_data(fd, path, region.host + (a - offset), b - a, a, chunks);
    pos = b;
  }
  chunks.zeros(end - pos);
}

/// Writes the memory file and returns its chunk digests (format 2: no whole-file digest, so the
/// pause of a snapshot hashes what the guest wrote, not every zero of its RAM).
MemoryChunks write_memory(const fs::path& path, const GuestMemory& memory) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) fail_errno(path, "cannot create", errno);
  ChunkHasher chunks(memory.size());
  // Only what may hold data is read: the rest is zeros, and reading it would allocate it (a
  // shared memfd's holes) or fault it in for nothing.
  const std::vector<MemoryImage::Extent> data = memory.data_extents();
  uint64_t offset = 0;
  for (const GuestMemory::Region& r : memory.regions()) {
    // The regions lie back to back in the file (GuestMemory's layout), as data's offsets do.
    if (r.file_offset != offset) fail(path, "guest memory regions are not laid out back to back");
    write_region(fd.get(), path, r, offset, data, chunks);
    offset += r.size;
  }
  // Trailing zero pages were never written: set the length, which leaves them as a hole.
  if (ftruncate(fd.get(), static_cast<off_t>(offset)) != 0) {
    fail_errno(path, "cannot set the size to " + std::to_string(offset), errno);
  }
  fsync_or_throw(fd.get(), path);
  return chunks.finish();
}

/// Writes one overlay file (sparse: only its extents hold data); returns its SHA-256.
std::string write_overlay(const fs::path& path, uint64_t size, const OverlayToWrite& overlay) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) fail_errno(path, "cannot create", errno);
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    fail_errno(path, "cannot set the size to " + std::to_string(size), errno);
  }
  std::vector<uint8_t> buf(kIoChunk);
  for (const auto& [offset, length] : overlay.extents) {
    for (uint64_t done = 0; done < length;) {
      const uint64_t n = std::min<uint64_t>(kIoChunk, length - done);
      const std::span<uint8_t> chunk(buf.data(), n);
      if (const int err = overlay.read(offset + done, chunk); err != 0) {
        fail_errno(path, "cannot read the disk's overlay at " + std::to_string(offset + done), err);
      }
      pwrite_all(fd.get(), path, chunk, offset + done);
      done += n;
    }
  }
  fsync_or_throw(fd.get(), path);
  return hash_memory_file(fd.get(), size, path);
}

}  // namespace

WrittenSnapshot write_snapshot(const fs::path& dir_in, const MachineConfig& machine,
                               const nlohmann::json& components, const GuestMemory& memory,
                               const std::vector<OverlayToWrite>& overlays) {
  // The overlays' records, checked with the rest before anything is written (their digests
  // are filled in once the files exist).
  MachineConfig planned = machine;
  for (const OverlayToWrite& o : overlays) {
    if (o.disk >= planned.disks.size() || !planned.disks[o.disk].copy_on_write || !o.read) {
      throw SnapshotError("snapshot: overlay for disk " + std::to_string(o.disk) +
                          ", which is not a copy-on-write disk of the machine");
    }
    planned.disks[o.disk].overlay = DiskOverlay{overlay_file_name(o.disk), o.extents, std::string(64, '0')};
  }
  check_machine_config(planned, "snapshot machine config");
  check_components(components, "snapshot components");
  if (memory.size() != machine.memory_bytes()) {
    throw SnapshotError("snapshot: guest memory is " + std::to_string(memory.size()) +
                        " bytes but machine.memory_mib says " +
                        std::to_string(machine.memory_bytes()));
  }
  // "snap/" names the directory "snap": drop a trailing separator before deriving names.
  fs::path dir = dir_in.lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();
  if (dir.empty()) throw SnapshotError("snapshot: the directory name is empty");
  struct stat st {};
  if (lstat(dir.c_str(), &st) == 0) fail(dir, "already exists");

  std::string pattern = dir.string() + ".tmp-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) fail_errno(pattern, "cannot create directory", errno);
  TempDir tmp(pattern);

  State state;
  state.machine = planned;
  state.memory_size = memory.size();
  state.memory_chunks = write_memory(tmp.path() / kMemoryFile, memory);
  for (const OverlayToWrite& o : overlays) {
    DiskRecord& disk = state.machine.disks[o.disk];
    disk.overlay->sha256 = write_overlay(tmp.path() / disk.overlay->file, disk.size, o);
  }
  state.components = components;
  state.created = utc_now_iso8601();
  state.forkvm_version = std::string(forkvm_version());
  const std::string text = encode_state(state);
  write_new_file(tmp.path() / kStateFile, text);
  const std::string state_sha = Sha256::of(text);
  write_new_file(tmp.path() / kStateDigestFile, state_sha + "  " + kStateFile + "\n");
  fsync_dir(tmp.path());

  // RENAME_NOREPLACE: rename(2) would silently replace an empty directory created since the
  // check above.
  if (renameat2(AT_FDCWD, tmp.path().c_str(), AT_FDCWD, dir.c_str(), RENAME_NOREPLACE) != 0) {
    fail_errno(dir, "cannot move " + tmp.path().filename().string() + " into place", errno);
  }
  tmp.release();
  fsync_dir(dir.has_parent_path() ? dir.parent_path() : fs::path("."));
  return {state_sha, *state.memory_chunks};
}

}  // namespace forkvm::snapshot
