// GuestMemory: the one way host code touches guest RAM. Every access is bounds-checked
// against the regions, with overflow-safe arithmetic, and objects are copied with memcpy
// (never a pointer cast into guest memory, whose contents the guest can change at any time).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "base/fd.hpp"
#include "memory/huge_pages.hpp"
#include "memory/memory_image.hpp"
#include "memory/written_pages.hpp"

namespace forkvm {

/// Guest RAM: one or two host mappings laid out around the 32-bit MMIO hole.
///
/// Three kinds of backing (see Backing):
/// - anonymous memory (create_anonymous): private to this process, no file;
/// - a memfd mapped MAP_SHARED (create_memfd): the file *is* the RAM, so a snapshot or a fork can
///   map it again without copying;
/// - a file mapped MAP_PRIVATE (map_private): a restored or forked VM starts from the file's
///   content and copies a page only when it writes it (copy-on-write); nothing it writes ever
///   reaches the file.
///
/// File layout (memory file of a snapshot, memfd): the regions back to back in ascending
/// guest-physical order, so the region at 4 GiB starts at file offset 3 GiB when RAM exceeds
/// 3 GiB. Region::file_offset holds each region's offset.
class GuestMemory {
 public:
  /// One contiguous range of guest-physical RAM backed by one host mapping.
  struct Region {
    uint64_t gpa;    ///< first guest-physical address
    uint64_t size;   ///< bytes
    uint8_t* host;   ///< host address of gpa
    /// Offset of gpa in the memory-file layout (class comment): where this region lives in the
    /// backing file, or would live in a memory file written from anonymous RAM.
    uint64_t file_offset = 0;
  };

  /// How the RAM is backed.
  enum class Backing {
    kAnonymous,    ///< anonymous private memory; backing_fd() is -1
    kSharedFile,   ///< a memfd mapped MAP_SHARED: guest writes reach the file
    kPrivateFile,  ///< a file mapped MAP_PRIVATE: guest writes stay in this mapping
    /// Address space only (PROT_NONE, nothing behind it): a VM shell's RAM before
    /// map_image_over() gives it an image. Never handed to a guest or a device.
    kReserved,
  };

  /// Maps `size` bytes of anonymous, lazily allocated memory: [0, min(size, 3 GiB)) and the
  /// rest from 4 GiB on. Each region starts on a 2 MiB boundary (as for create_memfd and
  /// reserve), so that anonymous THP, where the host's `enabled` allows it, can back it. Throws ConfigError when size is not page-aligned or zero, and
  /// GuestMemoryError when the host cannot map it.
  static GuestMemory create_anonymous(uint64_t size);

  /// Maps `size` bytes of RAM backed by a new memfd, MAP_SHARED, with the same region layout as
  /// create_anonymous; the memfd holds the regions back to back (class comment). The memfd is
  /// sparse (pages are allocated when first written) and sealed against shrinking and growing,
  /// so no mapping of it can ever fault past its end. Throws ConfigError for a bad size and
  /// GuestMemoryError when the host refuses.
  ///
  /// With `huge_pages`, each region is advised MADV_HUGEPAGE before any page exists, so that
  /// where the host's shmem_enabled allows it ("advise", "within_size", "always") the memfd is
  /// filled with 2 MiB shmem pages, PMD-mapped. A refusal or a host that gives none anyway is
  /// not an error: the RAM works with 4 KiB pages and huge_page_advice() / huge_page_usage()
  /// say what the host did. Forks and snapshots treat it as any memfd (nothing is copied).
  static GuestMemory create_memfd(uint64_t size, bool huge_pages = false);

  /// Maps the file `fd` (a snapshot memory file or a memfd from create_memfd, laid out as in the
  /// class comment) as `size` bytes of guest RAM, MAP_PRIVATE | MAP_NORESERVE: no RAM is copied
  /// or pre-faulted, so the cost does not grow with `size`; a page is copied only when this VM
  /// writes it, and those writes never reach the file or any other mapping of it.
  ///
  /// Checks first that `fd` is a regular file (memfds are) of at least `size` bytes, throwing
  /// SnapshotError otherwise (ConfigError for a bad size, GuestMemoryError when mmap fails).
  /// `fd` is duplicated; the caller keeps its own descriptor.
  ///
  /// Contract: the file must not change while mapped. A page this VM has not yet written is
  /// still read from the file, so a later write to the file (or to a MAP_SHARED mapping of it)
  /// shows through, and truncating the file makes those pages raise SIGBUS. A fork of a running
  /// VM therefore maps a frozen copy (a memfd that nobody maps shared any more), never the
  /// parent's live memfd.
  static GuestMemory map_private(int fd, uint64_t size);

  /// Maps `image` copy-on-write as guest RAM (as map_private, over the image's base file and
  /// its layers: MemoryImage's file comment). The mapping keeps the image alive.
  static GuestMemory map_image(std::shared_ptr<const MemoryImage> image);

  /// Reserves the host address ranges of a `size`-byte RAM (the regions of create_anonymous),
  /// PROT_NONE with nothing behind them (kReserved): the RAM of a VM shell built before its
  /// image is known (vmm/shell_pool.hpp). KVM memory slots can point at it at once; a guest or
  /// host access before map_image_over() faults instead of seeing zeros. Throws as
  /// create_anonymous.
  static GuestMemory reserve(uint64_t size);
  /// Maps `image` copy-on-write over this reserved RAM at the same host addresses (MAP_FIXED),
  /// so the memory slots already registered on them see the image, and KVM, which never
  /// translated the reservation, has nothing stale. Afterwards this RAM is exactly what
  /// map_image(image) makes. Throws ConfigError unless this RAM is kReserved and the image's
  /// size is its size; GuestMemoryError when the host refuses a mapping (this RAM is then
  /// partly mapped: discard it).
  void map_image_over(std::shared_ptr<const MemoryImage> image);

  /// Freezes this RAM into an image and re-maps this RAM copy-on-write over it, at the same
  /// host addresses, so the content seen here does not change and nothing written here later
  /// reaches the image. The caller guarantees that nothing reads or writes the RAM meanwhile
  /// (vCPUs paused, devices quiesced); KVM's memory slots keep pointing at the same addresses
  /// and KVM drops its old translations through its MMU notifier. By backing:
  /// - kSharedFile: the memfd itself becomes the image's base; nothing is copied;
  /// - kPrivateFile: the pages written since this RAM was mapped or last frozen go into one new
  ///   layer over the current image (MemoryImage::with_layer); only those are copied. With
  ///   `guest_written` (the guest's writes from KVM's dirty log, one bitmap per region) and the
  ///   write log on, they are those pages plus the log's: found in time that follows the pages
  ///   written. Otherwise private_extents(), a pagemap scan of the RAM touched;
  /// - kAnonymous: the image is a new all-zero (sparse) memfd base plus one layer holding the
  ///   pages ever touched; only those are copied.
  /// Afterwards the backing is kPrivateFile. Throws GuestMemoryError when the host refuses: the
  /// RAM is then unchanged, unless re-mapping itself failed part way (remap_failed() is then
  /// true and the VM must be stopped).
  std::shared_ptr<const MemoryImage> freeze(const PageBitmaps* guest_written = nullptr);
  /// Whether the last successful freeze() found the written pages in the logs (guest_written
  /// and the write log) rather than by a pagemap scan or not at all.
  bool last_freeze_logged() const noexcept { return last_freeze_logged_; }
  /// A freeze() failed while re-mapping: parts of this RAM may be unmapped.
  bool remap_failed() const noexcept { return remap_failed_; }

  /// The image this RAM is mapped from (kPrivateFile), else nullptr.
  const std::shared_ptr<const MemoryImage>& image() const noexcept { return image_; }

  /// The pages of this RAM that are private to this mapping: written (copied on write) since
  /// it was mapped, or, for anonymous RAM, ever touched; as sorted, disjoint extents in the
  /// memory-file layout. From /proc/self/pagemap (present and not a file page, or swapped).
  /// Empty for kSharedFile, whose pages all live in the memfd. Throws GuestMemoryError when
  /// pagemap cannot be read.
  std::vector<MemoryImage::Extent> private_extents() const;

  /// The parts of this RAM that may hold non-zero bytes, as sorted, disjoint extents in the
  /// memory-file layout; every byte outside them reads as zero. From what the kernel knows,
  /// without touching the RAM: kSharedFile, the memfd's data (SEEK_DATA/SEEK_HOLE: a hole was
  /// never written); kPrivateFile, the image's data (its base file's, its layers' extents) and
  /// private_extents(); kAnonymous, private_extents() (touched or swapped pages); kReserved,
  /// none. For a writer that must not read the rest: reading a never-written page of a shared
  /// memfd allocates it. Throws GuestMemoryError when the kernel cannot tell.
  std::vector<MemoryImage::Extent> data_extents() const;

  /// The pages this RAM has touched since it was mapped, in the memory-file layout (sorted,
  /// disjoint extents): `written` are private copies (as private_extents()), `read` image pages
  /// mapped without a copy. From /proc/self/pagemap. Throws GuestMemoryError when pagemap
  /// cannot be read.
  struct Touched {
    std::vector<MemoryImage::Extent> written;
    std::vector<MemoryImage::Extent> read;
  };
  Touched touched_extents() const;
  /// Takes the pages of `touched` ahead of the guest, so that its first touches find them in
  /// place: `written` ones are copied (MADV_POPULATE_WRITE: the copy holds the page's current
  /// content, as a write fault would make), `read` ones mapped (MADV_POPULATE_READ). For
  /// kPrivateFile RAM (an image's); other backings and extents outside this RAM are ignored.
  /// Returns the bytes taken; 0 on a kernel without MADV_POPULATE_* (before 5.14). Throws
  /// GuestMemoryError when the kernel refuses for another reason (e.g. ENOMEM).
  uint64_t prefault(const Touched& touched) const;

  /// The part of one memory-file extent that lies in one RAM region.
  struct ExtentPiece {
    uint64_t gpa;          ///< guest-physical address of the piece
    uint8_t* host;         ///< host address of the piece
    uint64_t file_offset;  ///< memory-file offset of the piece
    uint64_t length;       ///< bytes
  };
  /// Calls `fn` with every piece of `extents` (memory-file offsets, e.g. those of another VM of
  /// the same image) that lies in this RAM, extent by extent and region by region; parts that
  /// lie in no region are skipped. Stops at the first `fn` that returns false, and then returns
  /// false.
  bool for_each_piece(const std::vector<MemoryImage::Extent>& extents,
                      const std::function<bool(const ExtentPiece&)>& fn) const;

  /// Host memory in use by this RAM (pagemap): pages private to it, and resident pages of the
  /// backing file it shares with other mappings.
  struct Usage {
    uint64_t private_bytes = 0;
    uint64_t shared_bytes = 0;
  };
  Usage usage() const;

  GuestMemory(GuestMemory&& other) noexcept;
  GuestMemory& operator=(GuestMemory&& other) noexcept;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory();

  /// Total RAM in bytes.
  uint64_t size() const noexcept { return total_; }
  /// The RAM regions, in ascending guest-physical order.
  const std::vector<Region>& regions() const noexcept { return regions_; }
  /// How the RAM is backed.
  Backing backing() const noexcept { return backing_; }
  /// What asking for huge pages came to (create_memfd with huge_pages); `asked` is false
  /// otherwise. Kept after freeze(): it describes how this RAM was made.
  const HugePageAdvice& huge_page_advice() const noexcept { return huge_advice_; }
  /// The host pages behind this RAM's mappings now, huge ones counted apart
  /// (/proc/self/smaps). All zero when smaps cannot be read.
  HugePageUsage huge_page_usage() const;
  /// The backing file (valid while this object lives), or -1 for anonymous RAM. For
  /// kPrivateFile it is the image's base file, which holds neither the image's layers nor the
  /// pages this VM has written since: read guest RAM through slice()/read() instead.
  int backing_fd() const noexcept { return image_ ? image_->base_fd() : fd_.get(); }

  /// Host view of [gpa, gpa + len) for reading, which must lie inside one region; nullopt
  /// otherwise. Never throws: this is the form for the exit/device hot path.
  std::optional<std::span<const uint8_t>> try_slice(uint64_t gpa, uint64_t len) const noexcept;
  /// As try_slice, but throws GuestMemoryError naming the range.
  std::span<const uint8_t> slice(uint64_t gpa, uint64_t len) const;
  /// The same views for writing: the only way host code writes guest RAM, so that the write
  /// log (start_write_log()) sees every page it writes.
  std::optional<std::span<uint8_t>> try_slice_for_write(uint64_t gpa, uint64_t len) const noexcept;
  std::span<uint8_t> slice_for_write(uint64_t gpa, uint64_t len) const;

  /// Copies `data` to guest memory at `gpa` (throws GuestMemoryError when out of range).
  void write(uint64_t gpa, std::span<const uint8_t> data) const;
  /// Copies guest memory at `gpa` into `out` (throws GuestMemoryError when out of range).
  void read(uint64_t gpa, std::span<uint8_t> out) const;

  /// Atomic loads and stores of a naturally aligned 16-bit guest location, for the fields
  /// that another agent publishes or consumes concurrently: a virtqueue's avail->idx and
  /// used->idx (and avail->flags). The acquire load pairs with the driver's release of the
  /// ring entries and descriptors it covers, the release store with the driver's acquire of
  /// used->idx: the C++ form of the virtio memory barriers, which tools that check ordering
  /// (ThreadSanitizer) can follow, unlike a plain copy next to a fence. nullopt / false when
  /// [gpa, gpa + 2) is outside RAM or `gpa` is odd. Never throw.
  std::optional<uint16_t> load_u16(uint64_t gpa, std::memory_order order) const noexcept;
  bool store_u16(uint64_t gpa, uint16_t value, std::memory_order order) const noexcept;

  /// Reads a trivially copyable object from guest memory.
  template <typename T>
  T read_obj(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    std::memcpy(&value, slice(gpa, sizeof(T)).data(), sizeof(T));
    return value;
  }
  /// Writes a trivially copyable object to guest memory.
  template <typename T>
  void write_obj(uint64_t gpa, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    std::memcpy(slice_for_write(gpa, sizeof(T)).data(), &value, sizeof(T));
  }

  /// From now on, records every page host code writes (write(), write_obj(), store_u16(), the
  /// *_for_write views) in a write log (memory/written_pages.hpp), which freeze(guest_written)
  /// adds to the guest's own writes. For RAM mapped from an image, whose KVM memory slots log
  /// the guest's writes (Vm::prepare). Not thread-safe against the accessors: call before any
  /// device runs.
  void start_write_log();
  /// Whether start_write_log() was called.
  bool write_logged() const noexcept { return write_log_ != nullptr; }

 private:
  GuestMemory(std::vector<Region> regions, uint64_t total);
  /// Maps every region of a `size`-byte RAM with `map(region_size, file_offset)`, which returns
  /// the host address.
  static GuestMemory map_regions(uint64_t size,
                                 const std::function<uint8_t*(uint64_t, uint64_t)>& map);
  void release() noexcept;
  /// Where [gpa, gpa + len) lies: its region, the offset in it and the host address.
  struct Located {
    size_t region;
    uint64_t offset;
    uint8_t* host;
  };
  std::optional<Located> locate(uint64_t gpa, uint64_t len) const noexcept;
  /// For freeze() with the logs: the pages `guest_written` or the write log name (the log is
  /// taken into `host_written`), checked against a pagemap scan when FORKVM_CHECK_WRITE_LOG=1
  /// (guest_memory_written.cpp).
  std::vector<MemoryImage::Extent> written_since_freeze(const PageBitmaps& guest_written,
                                                        PageBitmaps& host_written) const;

  std::vector<Region> regions_;
  uint64_t total_ = 0;
  Backing backing_ = Backing::kAnonymous;
  Fd fd_;
  /// kPrivateFile: the image mapped (holds its files open while the mapping lives). fd_ is
  /// then unused.
  std::shared_ptr<const MemoryImage> image_;
  bool remap_failed_ = false;
  HugePageAdvice huge_advice_;
  /// Pages host code wrote since the last freeze (start_write_log()); null when not logged.
  std::unique_ptr<WriteLog> write_log_;
  bool last_freeze_logged_ = false;
};

}  // namespace forkvm
