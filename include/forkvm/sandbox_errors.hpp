// Typed errors of the sandbox API (forkvm::Sandbox and forkvm::AgentClient). All derive from
// forkvm::Error (errors.hpp, which also holds InvalidStateError and CancelledError: the VM
// throws those too). A VM that stops underneath a request is reported as
// forkvm::GuestError, which carries the guest's console tail.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "forkvm/errors.hpp"

namespace forkvm {

/// The agent could not be reached: the socket refused the connection, the CONNECT handshake
/// was refused or closed, the hello was not answered, or the connection was lost while a
/// request was pending.
class AgentUnreachableError : public Error {
 public:
  using Error::Error;
};

/// The agent broke the wire protocol (a malformed frame, a bad hello, a reply that does not
/// fit its request). The connection is closed and every pending request fails with this.
class AgentProtocolError : public Error {
 public:
  using Error::Error;
};

/// A deadline passed: the agent did not answer in time, the guest did not become ready, ...
/// Nothing is left waiting; the connection stays usable unless the message says otherwise.
class TimeoutError : public Error {
 public:
  using Error::Error;
};

/// What a failed guest-side operation ran into. Mirrors the `code` of the protocol's error
/// frame (contract/protocol/MESSAGES.md, "Error codes").
enum class ErrorKind {
  kNotFound,          ///< not_found (ENOENT): path, cwd, or the program to exec
  kPermissionDenied,  ///< permission_denied (EACCES, EPERM)
  kExists,            ///< exists (EEXIST)
  kNotADirectory,     ///< not_a_directory (ENOTDIR)
  kIsADirectory,      ///< is_a_directory (EISDIR)
  kNotEmpty,          ///< not_empty (ENOTEMPTY)
  kNoSpace,           ///< no_space (ENOSPC, EDQUOT)
  kReadOnly,          ///< read_only (EROFS)
  kInvalidArgument,   ///< invalid_argument: a bad field, EINVAL, ENAMETOOLONG
  kTooLarge,          ///< too_large: a request over a limit
  kNotRunning,        ///< not_running: signal/cancel target is not running
  kCancelled,         ///< cancelled: the request was cancelled
  kUnsupported,       ///< unsupported: the agent does not know the request
  kIo,                ///< io: any other errno
  kInternal,          ///< internal: an agent bug
  kUnknown,           ///< a code this host does not know (a newer agent)
};

/// The protocol's name of a kind ("not_found", ...); "unknown" for kUnknown.
std::string_view to_string(ErrorKind kind) noexcept;
/// The kind for a protocol code; kUnknown for codes this host does not know.
ErrorKind error_kind_from_code(std::string_view code) noexcept;

/// An operation failed with a typed reason: either the agent answered with an error frame
/// (from_guest() is true), or the host decided it (from_guest() is false): it rejected the
/// request before sending anything because it would break a protocol rule (kInvalidArgument or
/// kTooLarge, exactly what the agent would have answered), a transfer went past its host-side
/// limit (kTooLarge: read_file, download_file), or a local file failed (download_file,
/// upload_file). An agent's message and code are guest text: they are kept made printable
/// (base/text.hpp printable(): control bytes escaped, at most 1 KiB shown).
class OperationError : public Error {
 public:
  /// `op` names the request ("read_file"), `path` the path it was about (may be empty).
  OperationError(ErrorKind kind, std::string op, std::string path, std::string message,
                 std::optional<int> sys_errno, bool from_guest);
  /// What went wrong.
  ErrorKind kind() const noexcept { return kind_; }
  /// The request type, e.g. "exec", "write_file".
  const std::string& op() const noexcept { return op_; }
  /// The path the request was about, or empty.
  const std::string& path() const noexcept { return path_; }
  /// The agent's (or the host check's) own message, without the op/path prefix.
  const std::string& message() const noexcept { return message_; }
  /// The errno in the guest, when a system call failed there.
  std::optional<int> sys_errno() const noexcept { return errno_; }
  /// True when the agent reported it; false when the host decided it (see the class comment).
  bool from_guest() const noexcept { return from_guest_; }

 private:
  ErrorKind kind_;
  std::string op_;
  std::string path_;
  std::string message_;
  std::optional<int> errno_;
  bool from_guest_;
};

}  // namespace forkvm
