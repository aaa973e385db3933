// The virtio-blk wire format (virtio 1.2 §5.2; Linux include/uapi/linux/virtio_blk.h): feature
// bits, request types, status codes, the request header and the config-space layout. All
// fields are little-endian, as on x86-64.
#pragma once

#include <cstddef>
#include <cstdint>

namespace forkvm::blk {

/// Sector size of every offset and length in the protocol (§5.2.6), whatever blk_size says.
inline constexpr uint64_t kSectorSize = 512;
inline constexpr unsigned kSectorShift = 9;

/// Feature bits (§5.2.3).
namespace feature {
inline constexpr uint64_t kSizeMax = 1ull << 1;      ///< size_max: largest single segment
inline constexpr uint64_t kSegMax = 1ull << 2;       ///< seg_max: most data segments per request
inline constexpr uint64_t kRo = 1ull << 5;           ///< the disk is read-only
inline constexpr uint64_t kBlkSize = 1ull << 6;      ///< blk_size: the logical block size
inline constexpr uint64_t kFlush = 1ull << 9;        ///< VIRTIO_BLK_T_FLUSH is supported
inline constexpr uint64_t kDiscard = 1ull << 13;     ///< VIRTIO_BLK_T_DISCARD is supported
inline constexpr uint64_t kWriteZeroes = 1ull << 14; ///< VIRTIO_BLK_T_WRITE_ZEROES is supported
}  // namespace feature

/// Request types (§5.2.6).
namespace type {
inline constexpr uint32_t kIn = 0;
inline constexpr uint32_t kOut = 1;
inline constexpr uint32_t kFlush = 4;
inline constexpr uint32_t kGetId = 8;
inline constexpr uint32_t kDiscard = 11;
inline constexpr uint32_t kWriteZeroes = 13;
}  // namespace type

/// Status byte values (§5.2.6).
namespace status {
inline constexpr uint8_t kOk = 0;
inline constexpr uint8_t kIoErr = 1;
inline constexpr uint8_t kUnsupp = 2;
}  // namespace status

/// The device-readable header that starts every request (struct virtio_blk_req).
struct RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

/// One range of a DISCARD or WRITE_ZEROES request (struct virtio_blk_discard_write_zeroes).
struct DiscardRange {
  uint64_t sector;
  uint32_t num_sectors;
  uint32_t flags;  ///< bit 0: unmap (WRITE_ZEROES may deallocate)
};
static_assert(sizeof(DiscardRange) == 16);
inline constexpr uint32_t kDiscardFlagUnmap = 1;

/// GET_ID answers with this many bytes (VIRTIO_BLK_ID_BYTES), NUL-padded.
inline constexpr size_t kIdBytes = 20;

/// Config space (struct virtio_blk_config) up to the write-zeroes fields; offsets are fixed by
/// the specification (the structure is packed, as Linux declares it); the static_asserts keep them.
struct __attribute__((packed)) Config {
  uint64_t capacity;  ///< in 512-byte sectors
  uint32_t size_max;
  uint32_t seg_max;
  uint16_t cylinders;
  uint8_t heads;
  uint8_t sectors;
  uint32_t blk_size;
  uint8_t physical_block_exp;
  uint8_t alignment_offset;
  uint16_t min_io_size;
  uint32_t opt_io_size;
  uint8_t writeback;
  uint8_t unused0;
  uint16_t num_queues;
  uint32_t max_discard_sectors;
  uint32_t max_discard_seg;
  uint32_t discard_sector_alignment;
  uint32_t max_write_zeroes_sectors;
  uint32_t max_write_zeroes_seg;
  uint8_t write_zeroes_may_unmap;
  uint8_t unused1[3];
};
static_assert(offsetof(Config, blk_size) == 20);
static_assert(offsetof(Config, max_discard_sectors) == 36);
static_assert(offsetof(Config, write_zeroes_may_unmap) == 56);
static_assert(sizeof(Config) == 60);

}  // namespace forkvm::blk
