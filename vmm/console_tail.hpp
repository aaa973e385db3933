// ConsoleTail: keeps the last N bytes of console output so errors can show why a guest died.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace forkvm {

/// A bounded, thread-safe buffer of the most recent console bytes.
class ConsoleTail {
 public:
  explicit ConsoleTail(size_t capacity) : capacity_(capacity) {}

  /// Appends output, dropping the oldest bytes beyond the capacity.
  void append(std::string_view data) {
    std::lock_guard lock(mu_);
    total_ += data.size();
    if (data.size() >= capacity_) {
      buf_.assign(data.substr(data.size() - capacity_));
      return;
    }
    buf_.append(data);
    if (buf_.size() > capacity_) buf_.erase(0, buf_.size() - capacity_);
  }

  /// Bytes appended so far, kept or not.
  uint64_t total() const {
    std::lock_guard lock(mu_);
    return total_;
  }

  /// The kept bytes, starting at a line boundary when one is available.
  std::string text() const {
    std::lock_guard lock(mu_);
    if (buf_.size() < capacity_) return buf_;
    const size_t nl = buf_.find('\n');
    return nl == std::string::npos ? buf_ : buf_.substr(nl + 1);
  }

 private:
  size_t capacity_;
  mutable std::mutex mu_;
  std::string buf_;
  uint64_t total_ = 0;
};

}  // namespace forkvm
