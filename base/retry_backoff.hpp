// RetryBackoff: the pause between tries of a background task that keeps failing (the shell
// pool's and a Template pool's refill threads): it doubles from `first` up to `max` and goes
// back to `first` after a success, so a host short of memory or descriptors is retried quickly
// at first and then without a tight loop, and a recovered host is refilled at once.
#pragma once

#include <algorithm>
#include <chrono>

namespace forkvm {

class RetryBackoff {
 public:
  using ms = std::chrono::milliseconds;
  static constexpr ms kFirst{50};
  static constexpr ms kMax{5000};

  /// `first` <= `max`, both positive.
  explicit constexpr RetryBackoff(ms first = kFirst, ms max = kMax) noexcept
      : first_(first), max_(std::max(first, max)), next_(first) {}

  /// A try failed: returns how long to wait before the next one, and doubles the wait after
  /// that (at most `max`).
  ms failed() noexcept {
    const ms wait = next_;
    next_ = std::min(next_ * 2, max_);
    return wait;
  }
  /// A try succeeded: the next failure waits `first` again.
  void succeeded() noexcept { next_ = first_; }
  /// The wait the next failure will get.
  ms next() const noexcept { return next_; }

 private:
  ms first_;
  ms max_;
  ms next_;
};

}  // namespace forkvm
