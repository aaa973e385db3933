// Small POSIX file helpers for the snapshot reader and writer. Every failure is a SnapshotError
// that names the file and the errno text.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "base/fd.hpp"

namespace forkvm::snapshot {

/// How much of a memory file or an overlay the reader and writer hash, scan or copy at a time.
constexpr uint64_t kIoChunk = uint64_t{1} << 20;

/// Throws SnapshotError "<path>: <what>".
[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what);
/// Throws SnapshotError "<path>: <what>: <strerror(err)>".
[[noreturn]] void fail_errno(const std::filesystem::path& path, const std::string& what, int err);

/// Throws SnapshotError naming `path` and the reason unless the snapshot file or directory
/// described by `st` is this user's own: owned by the effective uid, not writable by group or
/// others, and (a file) with exactly one hard link. Anyone else who could write it, or a second
/// name for it in a directory someone else controls, could change it after it was checked.
void check_private(const std::filesystem::path& path, std::string_view label, const struct stat& st);

/// Opens an existing file read-only and checks that it is a regular file (and check_private()),
/// filling `st`.
/// O_NONBLOCK keeps a FIFO planted in a snapshot directory from blocking the open; O_NOCTTY
/// keeps a terminal device from becoming ours. Throws for a missing, unreadable or non-regular
/// file, with `label` (e.g. "memory file") in the message.
Fd open_regular_file(const std::filesystem::path& path, std::string_view label, struct stat& st);

/// Reads the whole of a regular file whose fstat size is `size`, which the caller has already
/// checked against its cap. Throws if the file changed size while being read.
std::string read_exact(int fd, const std::filesystem::path& path, uint64_t size);

/// Writes all of `bytes` at `offset` (pwrite, retried on EINTR and short writes).
void pwrite_all(int fd, const std::filesystem::path& path, std::span<const uint8_t> bytes,
                uint64_t offset);

/// Creates `path` (O_EXCL, mode 0600), writes `text` and fsyncs it.
void write_new_file(const std::filesystem::path& path, std::string_view text);

/// fsync(fd), throwing on failure.
void fsync_or_throw(int fd, const std::filesystem::path& path);

/// Opens the directory `path` and fsyncs it, so that names created or renamed in it are durable.
void fsync_dir(const std::filesystem::path& path);

}  // namespace forkvm::snapshot
