// AuditLog: collects the EgressEvents of a sandbox's egress proxy (EgressConfig::audit) for
// the network tests; wait_for() blocks until enough have arrived, bounded in time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

#include "forkvm/egress.hpp"

namespace forkvm::test {

class AuditLog {
 public:
  /// The callback to give the proxy; `this` must outlive it.
  std::function<void(const EgressEvent&)> callback() {
    return [this](const EgressEvent& e) {
      std::lock_guard lock(mutex_);
      events_.push_back(e);
      cv_.notify_all();
    };
  }
  /// The events so far, once there are `n` or `limit` has passed.
  std::vector<EgressEvent> wait_for(std::size_t n,
                                    std::chrono::seconds limit = std::chrono::seconds(30)) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, limit, [&] { return events_.size() >= n; });
    return events_;
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return events_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<EgressEvent> events_;
};

}  // namespace forkvm::test
