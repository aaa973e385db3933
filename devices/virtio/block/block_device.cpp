#include "devices/virtio/block/block_device.hpp"

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "base/event_fd.hpp"
#include <seccomp.h>

#include "base/text.hpp"
#include "base/thread_filter.hpp"
#include "base/thread_launcher.hpp"
#include "devices/virtio/block/virtio_blk.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {
namespace {

/// The worker's system calls besides the common ones (base/thread_filter.hpp): poll on its two
/// eventfds, the disk backends' positional I/O (pread_all/pwrite_all), fdatasync for a flush,
/// fallocate for discard and write-zeroes (hole punching, also in a copy-on-write top layer).
const ThreadFilter& worker_filter() {
  static const ThreadFilter filter(
      "virtio-blk",
      {SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(pread64), SCMP_SYS(pwrite64),
       SCMP_SYS(fdatasync), SCMP_SYS(fallocate)});
  return filter;
}

}  // namespace

/// The thread that serves the request queue between activate() and reset()/quiesce().
struct BlockDevice::Worker {
  VirtioActivation activation;
  blk::RequestContext context;
  EventFd stop;
  std::atomic<bool> stopping{false};
  std::mutex* counters_mu = nullptr;
  std::thread thread;

  Queue& queue() { return activation.queues[0]; }

  /// Handles what the driver made available, at most one queue's worth before looking at
  /// `stopping` again (a guest that refills the ring as fast as it drains cannot keep a
  /// quiesce waiting). Returns false once the queue is broken.
  bool drain() {
    const GuestMemory& mem = *activation.memory;
    bool used = false;
    for (bool more = true; more && !stopping.load(std::memory_order_relaxed);) {
      more = false;
      for (int i = 0; i < kQueueSize; ++i) {
        std::optional<DescriptorChain> chain = queue().pop_chain(mem);
        if (!chain) break;
        uint32_t len = 0;
        {
          std::lock_guard lock(*counters_mu);
          len = blk::handle_request(context, *chain);
        }
        if (!queue().add_used(mem, chain->head(), len)) break;
        used = true;
        more = i + 1 == kQueueSize;
      }
    }
    if (used) activation.interrupt->signal_used_buffer();
    return !queue().broken();
  }

  void run() noexcept {
    worker_filter().install();
    pollfd fds[2] = {{activation.queue_events[0], POLLIN, 0}, {stop.fd(), POLLIN, 0}};
    try {
      // Drain first: a restored or re-activated queue may hold requests notified before.
      while (drain()) {
        fds[0].revents = fds[1].revents = 0;
        if (::poll(fds, 2, -1) < 0) {
          if (errno == EINTR) continue;
          activation.needs_reset("virtio-blk: poll: " + std::string(errno_text(errno)));
          break;
        }
        if (fds[1].revents != 0) return;
        uint64_t n = 0;
        // Clears the notification; EAGAIN (nothing pending) is fine.
        [[maybe_unused]] const ssize_t got = ::read(activation.queue_events[0], &n, sizeof n);
      }
      if (queue().broken()) {
        activation.needs_reset("virtio-blk: request queue: " + queue().error_reason());
      }
    } catch (const std::exception& e) {  // std::bad_alloc from a chain's segment vector
      activation.fail(std::string("virtio-blk: worker stopped: ") + e.what());
    } catch (...) {
      activation.fail("virtio-blk: worker stopped: an exception that is not a std::exception");
    }
    // Broken: park until reset()/quiesce() stops us, touching nothing.
    while (!stopping.load()) {
      pollfd s{stop.fd(), POLLIN, 0};
      ::poll(&s, 1, -1);
    }
  }

  /// Stops and joins the thread; afterwards nothing touches guest memory.
  void finish() noexcept {
    stopping.store(true);
    stop.signal();
    if (thread.joinable()) thread.join();
  }
};

std::string BlockDevice::id_problem(const std::string& id) {
  if (id.size() > blk::kIdBytes) {
    return "id '" + id + "' is longer than " + std::to_string(blk::kIdBytes) + " bytes";
  }
  for (char ch : id) {
    if (ch < 0x21 || ch > 0x7e) return "id '" + id + "' may hold printable ASCII without spaces only";
  }
  return "";
}

BlockDevice::BlockDevice(DiskImage disk, std::string id)
    : BlockDevice(std::make_unique<DiskImage>(std::move(disk)), std::move(id)) {}

BlockDevice::BlockDevice(std::unique_ptr<BlockBackend> disk, std::string id)
    : disk_(std::move(disk)), id_(std::move(id)) {
  if (!disk_) throw ConfigError("disk '" + id_ + "': no backend");
  if (const std::string why = id_problem(id_); !why.empty()) throw ConfigError("disk " + why);
  features_ = virtio_feature::kVersion1 | blk::feature::kSizeMax | blk::feature::kSegMax |
              blk::feature::kBlkSize | blk::feature::kFlush;
  if (disk_->read_only()) features_ |= blk::feature::kRo;
  if (disk_->can_punch_holes()) features_ |= blk::feature::kDiscard | blk::feature::kWriteZeroes;
  config_.capacity = disk_->size() >> blk::kSectorShift;
  config_.size_max = kSizeMax;
  config_.seg_max = kSegMax;
  config_.blk_size = blk::kSectorSize;
  config_.num_queues = 1;
  if (disk_->can_punch_holes()) {
    config_.max_discard_sectors = kMaxDiscardSectors;
    config_.max_discard_seg = 1;
    config_.discard_sector_alignment = 1;
    config_.max_write_zeroes_sectors = kMaxDiscardSectors;
    config_.max_write_zeroes_seg = 1;
    config_.write_zeroes_may_unmap = 1;
  }
}

BlockDevice::~BlockDevice() { reset(); }

void BlockDevice::read_config(uint64_t offset, std::span<uint8_t> data) const noexcept {
  // Guest-controlled offset and length: copy only the overlap with the config structure.
  if (offset >= sizeof config_) return;
  const size_t n = std::min<uint64_t>(data.size(), sizeof config_ - offset);
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&config_) + offset, n);
}

void BlockDevice::activate(VirtioActivation activation) {
  reset();
  if (activation.queues.size() != 1 || activation.queue_events.size() != 1) {
    throw Error("virtio-blk activate: need 1 queue and 1 eventfd, got " +
                std::to_string(activation.queues.size()) + " and " +
                std::to_string(activation.queue_events.size()));
  }
  if (!activation.memory || !activation.interrupt || !activation.needs_reset) {
    throw Error("virtio-blk activate: missing guest memory, interrupt or reset callback");
  }
  if (!activation.queues[0].ready()) throw Error("virtio-blk activate: the queue is not ready");
  auto w = std::make_unique<Worker>();
  w->activation = std::move(activation);
  w->context.memory = w->activation.memory;
  w->context.disk = disk_.get();
  w->context.id = id_;
  const uint64_t acked = w->activation.acked_features;
  w->context.discard = (acked & blk::feature::kDiscard) != 0;
  w->context.write_zeroes = (acked & blk::feature::kWriteZeroes) != 0;
  w->context.counters = &counters_;
  w->counters_mu = &counters_mu_;
  Worker* raw = w.get();
  w->thread = start_thread([raw] { raw->run(); });
  worker_ = std::move(w);
}

void BlockDevice::reset() noexcept {
  if (!worker_) return;
  worker_->finish();
  worker_.reset();
}

std::vector<Queue> BlockDevice::quiesce() {
  if (!worker_) throw SnapshotError("snapshot: virtio-blk: quiesce of a device that is not activated");
  // Requests are completed in order by the worker: once it has stopped, every chain it popped
  // is in the used ring, so the queues carry nothing in flight.
  worker_->finish();
  std::vector<Queue> queues = std::move(worker_->activation.queues);
  worker_.reset();
  return queues;
}

std::shared_ptr<const FrozenDisk> BlockDevice::freeze_disk() {
  if (worker_) throw InvalidStateError("virtio-blk '" + id_ + "': freeze while requests may be in flight");
  return disk_->freeze();
}

blk::RequestCounters BlockDevice::counters() const {
  std::lock_guard lock(counters_mu_);
  return counters_;
}

BlockDevice::State BlockDevice::save_state() const {
  return State{id_, config_.capacity, disk_->read_only()};
}

void BlockDevice::restore_state(const State& state) const {
  const State mine = save_state();
  if (state == mine) return;
  throw SnapshotError("snapshot: blk '" + state.id + "': saved as " +
                      std::to_string(state.sectors) + " sectors" +
                      (state.read_only ? ", read-only" : ", read-write") +
                      ", but the disk attached now is '" + mine.id + "', " +
                      std::to_string(mine.sectors) + " sectors" +
                      (mine.read_only ? ", read-only" : ", read-write"));
}

}  // namespace forkvm
