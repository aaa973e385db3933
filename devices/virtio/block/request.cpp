#include "devices/virtio/block/request.hpp"

#include <algorithm>
#include <cerrno>
#include <limits>
#include <vector>

#include "devices/virtio/block/block_backend.hpp"
#include "devices/virtio/block/virtio_blk.hpp"
#include "devices/virtio/chain_io.hpp"
#include "devices/virtio/descriptor_chain.hpp"

namespace forkvm::blk {
namespace {

/// Whether [sector, sector + bytes/512) lies inside a disk of `disk_bytes`; every step is
/// overflow-checked (the sector comes from the guest and may be anything up to 2^64 - 1).
bool in_range(uint64_t sector, uint64_t bytes, uint64_t disk_bytes) noexcept {
  const uint64_t disk_sectors = disk_bytes >> kSectorShift;
  const uint64_t sectors = bytes >> kSectorShift;
  return sector <= disk_sectors && sectors <= disk_sectors - sector;
}

/// Moves `len` bytes from the file at `offset` into the writer (IN).
uint8_t read_into_guest(const BlockBackend& disk, Writer& w, uint64_t offset, uint64_t len) noexcept {
  try {
    std::vector<uint8_t> buf(std::min(len, kChunkBytes));
    for (uint64_t done = 0; done < len;) {
      const auto n = static_cast<size_t>(std::min<uint64_t>(buf.size(), len - done));
      if (disk.read(offset + done, std::span(buf.data(), n)) != 0) return status::kIoErr;
      if (w.write(std::span<const uint8_t>(buf.data(), n)) != n) return status::kIoErr;
      done += n;
    }
  } catch (const std::bad_alloc&) {
    return status::kIoErr;
  }
  return status::kOk;
}

/// Moves `len` bytes from the reader into the file at `offset` (OUT).
uint8_t write_from_guest(BlockBackend& disk, Reader& r, uint64_t offset, uint64_t len) noexcept {
  try {
    std::vector<uint8_t> buf(std::min(len, kChunkBytes));
    for (uint64_t done = 0; done < len;) {
      const auto n = static_cast<size_t>(std::min<uint64_t>(buf.size(), len - done));
      if (r.read(std::span(buf.data(), n)) != n) return status::kIoErr;
      if (disk.write(offset + done, std::span<const uint8_t>(buf.data(), n)) != 0) {
        return status::kIoErr;
      }
      done += n;
    }
  } catch (const std::bad_alloc&) {
    return status::kIoErr;
  }
  return status::kOk;
}

/// DISCARD and WRITE_ZEROES: exactly one range (max_discard_seg and max_write_zeroes_seg are 1).
uint8_t discard_or_zero(const RequestContext& ctx, Reader& r, uint32_t type) noexcept {
  if (r.available() != sizeof(DiscardRange)) return status::kIoErr;
  const auto range = r.read_obj<DiscardRange>();
  if (!range) return status::kIoErr;
  const uint64_t bytes = uint64_t{range->num_sectors} << kSectorShift;
  if ((range->flags & ~kDiscardFlagUnmap) != 0) return status::kUnsupp;  // reserved bits
  if (type == type::kDiscard && range->flags != 0) return status::kUnsupp;  // unmap: zeroes only
  if (!in_range(range->sector, bytes, ctx.disk->size())) return status::kIoErr;
  if (bytes == 0) return status::kOk;
  const uint64_t offset = range->sector << kSectorShift;
  int err = 0;
  if (type == type::kDiscard) {
    err = ctx.disk->punch_hole(offset, bytes);
  } else {
    err = (range->flags & kDiscardFlagUnmap) != 0 ? ctx.disk->punch_hole(offset, bytes)
                                                  : ctx.disk->write_zeroes(offset, bytes);
  }
  return err == 0 ? status::kOk : status::kIoErr;
}

}  // namespace

uint32_t handle_request(const RequestContext& ctx, const DescriptorChain& chain) noexcept {
  RequestCounters& c = *ctx.counters;
  // The status byte is the last device-writable byte; without one nothing can be answered.
  if (chain.writable_bytes() == 0) {
    ++c.unanswerable;
    return 0;
  }
  const uint64_t data_in = chain.writable_bytes() - 1;  // writable bytes before the status
  Reader r(*ctx.memory, chain);
  Writer w(*ctx.memory, chain);
  auto finish = [&](uint8_t st) -> uint32_t {
    if (st == status::kIoErr) ++c.io_errors;
    if (st == status::kUnsupp) ++c.unsupported;
    // Skip to the status byte: whatever of the data area was not written stays as it was.
    const size_t pad = data_in - std::min<uint64_t>(data_in, w.bytes_written());
    static constexpr uint8_t kZeros[256] = {};
    for (size_t left = pad; left > 0;) {
      const size_t n = std::min(left, sizeof kZeros);
      w.write(std::span(kZeros, n));
      left -= n;
    }
    w.write_obj(st);
    // Bytes written: the data the device produced plus the status (the padding is not data,
    // but the driver only reads it for IN, where it is never padded on success).
    return static_cast<uint32_t>(std::min<uint64_t>(w.bytes_written(),
                                                    std::numeric_limits<uint32_t>::max()));
  };
  const auto header = r.read_obj<RequestHeader>();
  if (!header) return finish(status::kIoErr);
  const uint64_t data_out = r.available();  // readable bytes after the header
  BlockBackend& disk = *ctx.disk;

  switch (header->type) {
    case type::kIn: {
      if (data_out != 0 || data_in % kSectorSize != 0) return finish(status::kIoErr);
      if (!in_range(header->sector, data_in, disk.size())) return finish(status::kIoErr);
      ++c.reads;
      return finish(read_into_guest(disk, w, header->sector << kSectorShift, data_in));
    }
    case type::kOut: {
      if (data_in != 0 || data_out % kSectorSize != 0) return finish(status::kIoErr);
      if (disk.read_only()) return finish(status::kIoErr);  // §5.2.6.2 with VIRTIO_BLK_F_RO
      if (!in_range(header->sector, data_out, disk.size())) return finish(status::kIoErr);
      ++c.writes;
      return finish(write_from_guest(disk, r, header->sector << kSectorShift, data_out));
    }
    case type::kFlush: {
      if (data_in != 0 || data_out != 0) return finish(status::kIoErr);
      ++c.flushes;
      return finish(disk.flush() == 0 ? status::kOk : status::kIoErr);
    }
    case type::kGetId: {
      if (data_out != 0 || data_in < kIdBytes) return finish(status::kIoErr);
      uint8_t id[kIdBytes] = {};
      std::copy_n(ctx.id.begin(), std::min(ctx.id.size(), kIdBytes), id);
      w.write(std::span<const uint8_t>(id, kIdBytes));
      ++c.get_ids;
      return finish(status::kOk);
    }
    case type::kDiscard:
    case type::kWriteZeroes: {
      const bool offered = header->type == type::kDiscard ? ctx.discard : ctx.write_zeroes;
      if (!offered) return finish(status::kUnsupp);
      if (data_in != 0) return finish(status::kIoErr);
      ++(header->type == type::kDiscard ? c.discards : c.write_zeroes);
      return finish(discard_or_zero(ctx, r, header->type));
    }
    default:
      return finish(status::kUnsupp);
  }
}

}  // namespace forkvm::blk
