// BlockDevice: virtio-blk (virtio 1.2 §5.2) over a raw image file (DiskImage) or a copy-on-write
// disk (CowDisk), behind the
// virtio-mmio transport. One request queue served by one worker thread, off the vCPU threads:
// the vCPU's QueueNotify only signals an eventfd. Requests are handled one after another in
// ring order (request.hpp validates each), so when quiesce() or reset() returns, every request
// the worker took has been completed and answered; nothing is in flight.
//
// Offered features: VERSION_1, SIZE_MAX, SEG_MAX, BLK_SIZE, FLUSH, RO for a read-only disk, and
// DISCARD and WRITE_ZEROES when the image's file system can punch holes.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "devices/virtio/block/disk_image.hpp"
#include "devices/virtio/block/request.hpp"
#include "devices/virtio/block/virtio_blk.hpp"
#include "devices/virtio/virtio_device.hpp"

namespace forkvm {

class BlockDevice final : public VirtioDevice {
 public:
  /// Queue size (QueueNumMax) and the request limits it implies: seg_max data segments of at
  /// most size_max bytes each, plus the header and the status descriptors.
  static constexpr uint16_t kQueueSize = 256;
  static constexpr uint32_t kSegMax = 126;
  static constexpr uint32_t kSizeMax = 512u << 10;
  /// The transport's queues break on a chain longer than Queue::kDefaultMaxRequestBytes; all a
  /// driver within seg_max and size_max can send, plus a page for the header, the status and a
  /// DISCARD range, stays below it.
  static_assert(uint64_t{kSegMax} * kSizeMax + 4096 <= Queue::kDefaultMaxRequestBytes);
  /// Largest DISCARD / WRITE_ZEROES range, in sectors (2 GiB).
  static constexpr uint32_t kMaxDiscardSectors = 1u << 22;

  /// Why `id` cannot be a disk's serial (longer than 20 bytes, or a byte outside printable
  /// ASCII without spaces), or "" when it can. VmConfig's validate() and the constructor share it.
  static std::string id_problem(const std::string& id);

  /// A device serving `disk` (a raw image or a copy-on-write disk), announcing `id` through
  /// GET_ID. Throws ConfigError when id_problem(id) is not empty or `disk` is null.
  BlockDevice(std::unique_ptr<BlockBackend> disk, std::string id);
  /// A device serving a raw image.
  BlockDevice(DiskImage disk, std::string id);
  ~BlockDevice() override;

  std::string name() const override { return "blk"; }
  uint32_t device_id() const noexcept override { return virtio_id::kBlock; }
  uint64_t device_features() const noexcept override { return features_; }
  std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const noexcept override;
  void write_config(uint64_t, std::span<const uint8_t>) noexcept override {}  // read-only
  void activate(VirtioActivation activation) override;
  void reset() noexcept override;
  std::vector<Queue> quiesce() override;

  /// What a snapshot records of the device (block_state.hpp). Requests are never in flight
  /// when it is captured (quiesce() completes them), and the queues belong to the transport,
  /// so this is the device's identity as the guest saw it: serial, capacity, read-only.
  struct State {
    std::string id;
    uint64_t sectors = 0;
    bool read_only = true;
    bool operator==(const State&) const = default;
  };
  /// The device's State.
  State save_state() const;
  /// Checks that this device is the one `state` was saved from (a guest's driver holds the
  /// serial and capacity it read at probe time). Throws SnapshotError naming what differs.
  void restore_state(const State& state) const;

  /// The disk, for its path, size and kind.
  const BlockBackend& disk() const noexcept { return *disk_; }
  /// Freezes the disk for forks (BlockBackend::freeze()). Only between quiesce() and the next
  /// activation, when no request is in flight: InvalidStateError otherwise.
  std::shared_ptr<const FrozenDisk> freeze_disk();
  /// What the worker has done so far (a copy; safe while it runs).
  blk::RequestCounters counters() const;

 private:
  struct Worker;
  std::unique_ptr<BlockBackend> disk_;
  std::string id_;
  uint64_t features_ = 0;
  blk::Config config_{};
  // Kept across activations; the worker updates them under the mutex.
  mutable std::mutex counters_mu_;
  blk::RequestCounters counters_;
  std::unique_ptr<Worker> worker_;
};

}  // namespace forkvm
