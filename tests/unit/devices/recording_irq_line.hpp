// A test IrqLine that records every level it is driven to.
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

#include "devices/irq_line.hpp"

namespace forkvm::test {

/// Records each set_level() call; thread-safe like the real line.
class RecordingIrqLine : public IrqLine {
 public:
  /// IrqLine: appends `asserted` to the history.
  void set_level(bool asserted) noexcept override {
    std::lock_guard lock(mutex_);
    history_.push_back(asserted);
  }

  /// The current level (false before the first call).
  bool level() const {
    std::lock_guard lock(mutex_);
    return history_.empty() ? baseline_ : history_.back();
  }

  /// Number of low → high transitions seen since construction (line low) or clear_history().
  size_t rising_edges() const {
    std::lock_guard lock(mutex_);
    size_t edges = 0;
    bool previous = baseline_;
    for (bool level : history_) {
      if (level && !previous) ++edges;
      previous = level;
    }
    return edges;
  }

  /// Every level set so far, in order.
  std::vector<bool> history() const {
    std::lock_guard lock(mutex_);
    return history_;
  }

  /// Forgets the history but not the level, which edges are then counted from.
  void clear_history() {
    std::lock_guard lock(mutex_);
    if (!history_.empty()) baseline_ = history_.back();
    history_.clear();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<bool> history_;
  bool baseline_ = false;
};

}  // namespace forkvm::test
