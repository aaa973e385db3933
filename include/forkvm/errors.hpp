// Typed errors thrown by the forkvm library. Every error is a forkvm::Error, so a caller can
// catch one type; the subclasses say which part failed. Nothing in the library aborts or exits
// the host process on bad input from the caller or the guest.
#pragma once

#include <stdexcept>
#include <string>

namespace forkvm {

/// Base of every error the library throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The caller's configuration is invalid (memory size, vCPU count, command line, ...).
/// Raised before any resource is created.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A kernel or initramfs file is missing, unreadable or malformed. The message names the file
/// and what is wrong with it.
class ImageError : public Error {
 public:
  ImageError(const std::string& path, const std::string& what)
      : Error(path + ": " + what), path_(path) {}
  /// The file the error is about.
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

/// A KVM ioctl failed. Carries the ioctl name and errno.
class KvmError : public Error {
 public:
  /// `hint` (optional) says what the failure usually means, e.g. "this host has no KVM".
  KvmError(std::string op, int err, const std::string& hint = "");
  /// The failed operation, e.g. "KVM_SET_USER_MEMORY_REGION".
  const std::string& op() const noexcept { return op_; }
  /// The errno the kernel returned.
  int err() const noexcept { return err_; }

 private:
  std::string op_;
  int err_;
};

/// An access to guest memory fell outside guest RAM (or overflowed).
class GuestMemoryError : public Error {
 public:
  using Error::Error;
};

/// A snapshot cannot be written, read or restored: a missing or unreadable file, a digest
/// mismatch, a truncated memory file, an unknown format version, malformed state, or a host
/// that lacks CPU features the snapshot uses. The message names the file or component.
class SnapshotError : public Error {
 public:
  using Error::Error;
};

/// The guest did not reach the point it was expected to (agent ready, clean power-off): it
/// panicked, reset unexpectedly, hit a fatal exit, or ran past its deadline. `console_tail()`
/// holds the last lines the guest printed, which usually say why.
class GuestError : public Error {
 public:
  /// `console_tail` is guest output: it is kept (and appended to what()) made printable, its
  /// last 16 KiB with terminal control bytes escaped (base/text.hpp printable_lines()), so
  /// printing the error cannot drive the reader's terminal.
  GuestError(const std::string& what, const std::string& console_tail);
  /// The last part of the serial console output, made printable (see the constructor).
  const std::string& console_tail() const noexcept { return console_tail_; }

 private:
  std::string console_tail_;
};

/// The operation is not allowed in the object's current state: a VM that was never started or
/// has stopped, a prepared VM launched twice, a sandbox that was shut down, an exec whose stdin
/// is closed, a client that was closed, ...
class InvalidStateError : public Error {
 public:
  using Error::Error;
};

/// A wait was cancelled by the caller (a std::stop_token, or ExecProcess::cancel()).
class CancelledError : public Error {
 public:
  using Error::Error;
};

}  // namespace forkvm
