// EventFd: an owned Linux eventfd(2) counter. Queue notifications (KVM_IOEVENTFD) and
// interrupts (KVM_IRQFD) travel through these between KVM, vCPU threads and device workers.
// eventfd is a plain system call, not an ioctl, so this lives outside vmm/kvm; it reuses the
// generic Fd owner from there.
#pragma once

#include <cstdint>
#include <optional>

#include "base/fd.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {

/// Thrown when the host cannot create an eventfd (EMFILE, ENOMEM, ...). Carries errno.
class EventFdError : public Error {
 public:
  explicit EventFdError(int err);
  /// The errno eventfd(2) returned.
  int err() const noexcept { return err_; }

 private:
  int err_;
};

/// A non-blocking, close-on-exec eventfd with a counter starting at 0. Move-only.
class EventFd {
 public:
  /// Creates the eventfd. Throws EventFdError on failure.
  EventFd();

  /// Adds 1 to the counter, waking pollers. Returns false only if the write failed for a
  /// reason other than a saturated counter (a saturated counter is already readable, which is
  /// all a notification means). Thread-safe, never throws.
  bool signal() const noexcept;
  /// Reads and clears the counter: its value, or nullopt when it was 0 (or the read failed).
  std::optional<uint64_t> consume() const noexcept;

  /// The raw descriptor, still owned by this object (for KVM_IOEVENTFD/KVM_IRQFD and poll).
  int fd() const noexcept { return fd_.get(); }

 private:
  Fd fd_;
};

}  // namespace forkvm
