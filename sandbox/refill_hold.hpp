// RefillHold: when a Template pool's refill thread may replace a VM that a fork took. While the
// pool still holds a VM, the refill waits until the children it would compete with have
// finished their first exec, or TemplateOptions::refill_hold at most: preparing a VM (memory
// mapped, state restored ahead, device workers started, hot pages copied) is CPU and
// memory-map work that, on a host with few free CPUs, lands beside the new child's start and
// slows its first answer. An empty pool refills at once: the next fork would otherwise build
// its VM inline, which costs more than the overlap.
//
// Not thread-safe: the Template's pool mutex guards it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>

namespace forkvm {

class RefillHold {
 public:
  using Clock = std::chrono::steady_clock;

  /// `most`: the longest a refill waits for children's first execs; 0 turns the hold off.
  explicit RefillHold(std::chrono::milliseconds most) noexcept : most_(most) {}

  /// A fork took a pooled VM at `now`, leaving `left` in the pool. Returns whether its child
  /// holds the refill: then its first exec's end must be reported with answered().
  bool taken(size_t left, Clock::time_point now) noexcept {
    if (most_.count() <= 0 || left == 0) return false;
    if (now >= until_) waiting_ = 0;  // children of an earlier hold that never answered
    ++waiting_;
    until_ = std::max(until_, now + most_);
    return true;
  }

  /// A child that taken() said holds the refill finished its first exec (or went away).
  void answered() noexcept {
    if (waiting_ > 0) --waiting_;
  }

  /// With `pooled` VMs in the pool at `now`: nullopt when the refill may prepare a VM now,
  /// else the time until which it waits (unless answered() ends the hold sooner).
  std::optional<Clock::time_point> holds(size_t pooled, Clock::time_point now) const noexcept {
    if (pooled == 0 || waiting_ == 0 || now >= until_) return std::nullopt;
    return until_;
  }

 private:
  std::chrono::milliseconds most_;
  size_t waiting_ = 0;         ///< children holding the refill that have not answered
  Clock::time_point until_{};  ///< the hold ends here whatever they do
};

}  // namespace forkvm
