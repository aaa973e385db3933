// Test helper: an InterruptTrigger that counts the interrupts a device or transport raised.
#pragma once

#include <atomic>

#include "devices/virtio/mmio_transport.hpp"

namespace forkvm::testing {

class CountingTrigger : public InterruptTrigger {
 public:
  void trigger() noexcept override { count.fetch_add(1); }
  std::atomic<int> count{0};
};

}  // namespace forkvm::testing
