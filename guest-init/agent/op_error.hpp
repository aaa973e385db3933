// How a request fails: an error code from MESSAGES.md ("Error codes"), a message naming the
// path or field, and the errno when a system call failed.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace forkvm::agent {

/// A failed request. The server turns it into {"type":"error","code":..,"message":..
/// [,"errno":..]} for the request's id (or a 5555 error line); it never closes a connection.
class OpError : public std::runtime_error {
 public:
  /// A failure without an errno (a bad field, a limit).
  OpError(std::string_view code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  /// A failure of a system call: `err` is its errno.
  OpError(std::string_view code, const std::string& message, int err)
      : std::runtime_error(message), code_(code), errno_(err) {}

  /// The protocol error code, e.g. "not_found".
  [[nodiscard]] const std::string& code() const noexcept { return code_; }
  /// The errno, or 0 when the failure was not a system call's.
  [[nodiscard]] int error_number() const noexcept { return errno_; }

 private:
  std::string code_;
  int errno_ = 0;
};

/// The protocol code for an errno (MESSAGES.md table): ENOENT -> "not_found", ... and "io"
/// for any errno the table does not name.
[[nodiscard]] std::string_view code_for_errno(int err) noexcept;

/// An OpError for a failed system call: the code from code_for_errno(err) and the message
/// "<what>: <strerror(err)>".
[[nodiscard]] OpError errno_error(int err, const std::string& what);

/// Throws OpError(invalid_argument) naming `field` unless `path` passes the common path rules
/// (absolute, at most 4096 bytes, no NUL).
void check_path(std::string_view field, std::string_view path);

}  // namespace forkvm::agent
