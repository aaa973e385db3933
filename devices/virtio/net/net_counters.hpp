// What a virtio-net device has done, for tests, logs and reports. The worker counts with
// relaxed atomics; NetDevice::counters() reads a copy from any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace forkvm::virtio_net {

/// A copy of a device's counters (kept across activations, snapshots excluded).
struct Counters {
  uint64_t tx_frames = 0;       ///< frames the guest sent that the backend took
  uint64_t tx_bytes = 0;        ///< their bytes (Ethernet frames, without the virtio header)
  uint64_t tx_bad = 0;          ///< transmit chains refused: shorter than the header plus an
                                ///< Ethernet header, or longer than the header plus kMaxFrameBytes
  uint64_t tx_dropped = 0;      ///< well-formed frames the backend refused (an error other than
                                ///< EAGAIN: the peer closed, the TAP went away)
  uint64_t rx_frames = 0;       ///< frames delivered to the guest
  uint64_t rx_bytes = 0;        ///< their bytes (without the virtio header)
  uint64_t rx_dropped = 0;      ///< frames from the backend not delivered: longer than the
                                ///< guest's buffer or than kMaxFrameBytes, or runts
  uint64_t rx_bad_buffers = 0;  ///< receive chains returned unused: a device-readable part, or
                                ///< too small for a header and an Ethernet header
  uint64_t backend_errors = 0;  ///< receive errors from the backend (EAGAIN excluded)
  /// Field equality.
  bool operator==(const Counters&) const = default;
};

/// The live counters the worker updates.
struct AtomicCounters {
  std::atomic<uint64_t> tx_frames{0}, tx_bytes{0}, tx_bad{0}, tx_dropped{0};
  std::atomic<uint64_t> rx_frames{0}, rx_bytes{0}, rx_dropped{0}, rx_bad_buffers{0};
  std::atomic<uint64_t> backend_errors{0};

  /// Adds `n` to `c` (relaxed: counters order nothing).
  static void add(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept {
    c.fetch_add(n, std::memory_order_relaxed);
  }
  /// A copy of every counter (each read on its own: not one atomic snapshot).
  Counters load() const noexcept {
    auto r = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    return Counters{r(tx_frames),  r(tx_bytes),       r(tx_bad),
                    r(tx_dropped), r(rx_frames),      r(rx_bytes),
                    r(rx_dropped), r(rx_bad_buffers), r(backend_errors)};
  }
};

}  // namespace forkvm::virtio_net
