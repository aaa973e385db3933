#pragma once

// Names shared by the agent (server) and the host (client) for protocol v1 messages. The
// contract itself, field by field, is MESSAGES.md next to this file.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace forkvm::protocol {

/// vsock port of the framed agent protocol (MESSAGES.md "Transport").
inline constexpr std::uint32_t kAgentPort = 1024;
/// vsock port of the newline-delimited JSON metadata protocol (Firecracker-operator style).
inline constexpr std::uint32_t kMetadataPort = 5555;

/// Largest payload the agent puts in one stdout/stderr/file_data frame, and the chunk size
/// the host should use for stdin and file_data.
inline constexpr std::size_t kChunkBytes = 256 * 1024;
/// Default per-stream exec output cap (MESSAGES.md "exec").
inline constexpr std::uint64_t kDefaultMaxOutputBytes = 64ull << 20;
/// Longest path accepted anywhere.
inline constexpr std::size_t kMaxPathBytes = 4096;
/// Longest secret name.
inline constexpr std::size_t kMaxSecretNameBytes = 255;
/// Longest line on port 5555.
inline constexpr std::size_t kMaxMetadataLineBytes = 1 << 20;

/// Where the agent keeps the persistent env (one K=V per line) and the secrets.
inline constexpr std::string_view kEnvFile = "/run/forkvm/env";
inline constexpr std::string_view kSecretsDir = "/run/forkvm/secrets";

/// Frame types (the "type" key).
namespace msg {
inline constexpr std::string_view kHello = "hello";
inline constexpr std::string_view kOk = "ok";
inline constexpr std::string_view kError = "error";
inline constexpr std::string_view kPing = "ping";
inline constexpr std::string_view kExec = "exec";
inline constexpr std::string_view kStarted = "started";
inline constexpr std::string_view kStdout = "stdout";
inline constexpr std::string_view kStderr = "stderr";
inline constexpr std::string_view kExit = "exit";
inline constexpr std::string_view kStdin = "stdin";
inline constexpr std::string_view kStdinClose = "stdin_close";
inline constexpr std::string_view kSignal = "signal";
inline constexpr std::string_view kCancel = "cancel";
inline constexpr std::string_view kListExecs = "list_execs";
inline constexpr std::string_view kReadFile = "read_file";
inline constexpr std::string_view kWriteFile = "write_file";
inline constexpr std::string_view kFileData = "file_data";
inline constexpr std::string_view kFileEnd = "file_end";
inline constexpr std::string_view kStat = "stat";
inline constexpr std::string_view kExists = "exists";
inline constexpr std::string_view kListDir = "list_dir";
inline constexpr std::string_view kMkdir = "mkdir";
inline constexpr std::string_view kRemove = "remove";
inline constexpr std::string_view kRename = "rename";
inline constexpr std::string_view kSetEnv = "set_env";
inline constexpr std::string_view kSetSecret = "set_secret";
inline constexpr std::string_view kClearSecrets = "clear_secrets";
inline constexpr std::string_view kIdentity = "identity";
}  // namespace msg

/// Error codes (the "code" key of an error frame).
namespace code {
inline constexpr std::string_view kNotFound = "not_found";
inline constexpr std::string_view kPermissionDenied = "permission_denied";
inline constexpr std::string_view kExists = "exists";
inline constexpr std::string_view kNotADirectory = "not_a_directory";
inline constexpr std::string_view kIsADirectory = "is_a_directory";
inline constexpr std::string_view kNotEmpty = "not_empty";
inline constexpr std::string_view kNoSpace = "no_space";
inline constexpr std::string_view kReadOnly = "read_only";
inline constexpr std::string_view kInvalidArgument = "invalid_argument";
inline constexpr std::string_view kTooLarge = "too_large";
inline constexpr std::string_view kNotRunning = "not_running";
inline constexpr std::string_view kCancelled = "cancelled";
inline constexpr std::string_view kUnsupported = "unsupported";
inline constexpr std::string_view kIo = "io";
inline constexpr std::string_view kInternal = "internal";
}  // namespace code

}  // namespace forkvm::protocol
