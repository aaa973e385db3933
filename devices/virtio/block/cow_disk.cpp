#include "devices/virtio/block/cow_disk.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "base/positional_io.hpp"
#include "base/text.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {
namespace {

constexpr uint64_t B = CowDisk::kBlockBytes;

std::string resolve_dir(const std::string& dir) {
  if (!dir.empty()) return dir;
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/var/tmp";
}

/// A new unlinked, sparse file of `size` bytes in `dir` (O_TMPFILE, else mkstemp + unlink).
Fd make_overlay_file(const std::string& dir, uint64_t size) {
  Fd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd && (errno == EOPNOTSUPP || errno == EISDIR)) {
    std::string pattern = dir + "/forkvm-overlay-XXXXXX";
    fd.reset(::mkostemp(pattern.data(), O_CLOEXEC));
    if (fd) ::unlink(pattern.c_str());
  }
  if (!fd) {
    throw ImageError(dir, "cannot make a copy-on-write overlay file here: " + errno_text(errno));
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    throw ImageError(dir, "cannot size a copy-on-write overlay file: " + errno_text(errno));
  }
  return fd;
}

std::shared_ptr<DiskLayer> new_top(const std::string& dir, uint64_t size) {
  auto top = std::make_shared<DiskLayer>();
  top->fd = make_overlay_file(dir, size);
  top->map = BlockMap((size + B - 1) / B);
  return top;
}

/// One layer holding every block of `layers` (topmost wins), copied run by run.
std::shared_ptr<const DiskLayer> merge(const std::vector<std::shared_ptr<const DiskLayer>>& layers,
                                       const std::string& dir, uint64_t size) {
  auto merged = new_top(dir, size);
  const uint64_t blocks = merged->map.blocks();
  std::vector<uint8_t> buf(256 * 1024);
  auto source = [&](uint64_t block) -> const DiskLayer* {
    for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
      if ((*it)->map.test(block)) return it->get();
    }
    return nullptr;
  };
  for (uint64_t b = 0; b < blocks;) {
    const DiskLayer* src = source(b);
    uint64_t e = b + 1;
    while (e < blocks && source(e) == src && (e - b) * B < buf.size()) ++e;
    if (src != nullptr) {
      const uint64_t from = b * B, len = std::min(e * B, size) - from;
      const std::span<uint8_t> chunk(buf.data(), len);
      int err = pread_all(src->fd.get(), from, chunk);
      if (err == 0) err = pwrite_all(merged->fd.get(), from, chunk);
      if (err != 0) throw ImageError(dir, "merging copy-on-write layers: " + errno_text(err));
      for (uint64_t k = b; k < e; ++k) merged->map.set(k);
    }
    b = e;
  }
  return merged;
}

/// A copy-on-write disk frozen for forks: the base and the sealed layers.
class DiskStack final : public FrozenDisk {
 public:
  DiskStack(std::shared_ptr<const DiskImage> base, std::vector<std::shared_ptr<const DiskLayer>> layers,
            std::string dir)
      : base_(std::move(base)), layers_(std::move(layers)), dir_(std::move(dir)) {}
  std::unique_ptr<BlockBackend> open_child() const override {
    return std::make_unique<CowDisk>(base_, layers_, dir_);
  }

 private:
  std::shared_ptr<const DiskImage> base_;
  std::vector<std::shared_ptr<const DiskLayer>> layers_;
  std::string dir_;
};

}  // namespace

std::unique_ptr<CowDisk> CowDisk::create(DiskImage base, const std::string& overlay_dir) {
  if (!base.read_only()) {
    throw ConfigError(base.path() + ": the base of a copy-on-write disk must be opened read-only");
  }
  return std::make_unique<CowDisk>(std::make_shared<const DiskImage>(std::move(base)),
                                   std::vector<std::shared_ptr<const DiskLayer>>{},
                                   resolve_dir(overlay_dir));
}

std::shared_ptr<const FrozenDisk> CowDisk::frozen(DiskImage base,
                                                  std::vector<std::shared_ptr<const DiskLayer>> layers,
                                                  const std::string& overlay_dir) {
  if (!base.read_only()) {
    throw ConfigError(base.path() + ": the base of a copy-on-write disk must be opened read-only");
  }
  const uint64_t blocks = (base.size() + B - 1) / B;
  for (const auto& layer : layers) {
    if (!layer || layer->map.blocks() != blocks) {
      throw ConfigError(base.path() + ": a copy-on-write layer does not fit the disk");
    }
  }
  return std::make_shared<const DiskStack>(std::make_shared<const DiskImage>(std::move(base)),
                                           std::move(layers), resolve_dir(overlay_dir));
}

BlockMap CowDisk::block_map_of(const std::vector<std::pair<uint64_t, uint64_t>>& extents,
                               uint64_t size) {
  BlockMap map((size + B - 1) / B);
  for (const auto& [offset, length] : extents) {
    if (length == 0 || offset >= size || length > size - offset) continue;  // callers validated
    for (uint64_t b = offset / B; b * B < offset + length; ++b) map.set(b);
  }
  return map;
}

std::vector<std::pair<uint64_t, uint64_t>> CowDisk::written_extents() const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  const uint64_t blocks = top_->map.blocks();
  for (uint64_t b = 0; b < blocks; ++b) {
    if (level_of(b) == base_level()) continue;
    const uint64_t from = b * B, to = std::min(from + B, size());
    if (!out.empty() && out.back().first + out.back().second == from) {
      out.back().second += to - from;
    } else {
      out.emplace_back(from, to - from);
    }
  }
  return out;
}

CowDisk::CowDisk(std::shared_ptr<const DiskImage> base,
                 std::vector<std::shared_ptr<const DiskLayer>> layers, std::string overlay_dir)
    : base_(std::move(base)), layers_(std::move(layers)), overlay_dir_(std::move(overlay_dir)),
      top_(new_top(overlay_dir_, base_->size())) {
  // Punching past the end with KEEP_SIZE changes nothing and fails where holes are unsupported.
  can_punch_ = ::fallocate(top_->fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           static_cast<off_t>(base_->size()), static_cast<off_t>(B)) == 0;
}

size_t CowDisk::level_of(uint64_t block) const noexcept {
  if (top_->map.test(block)) return 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[layers_.size() - 1 - i]->map.test(block)) return 1 + i;
  }
  return base_level();
}

int CowDisk::read_level(size_t level, uint64_t offset, std::span<uint8_t> out) const noexcept {
  if (level == 0) return pread_all(top_->fd.get(), offset, out);
  if (level == base_level()) return base_->read(offset, out);
  return pread_all(layers_[layers_.size() - level]->fd.get(), offset, out);
}

int CowDisk::read(uint64_t offset, std::span<uint8_t> out) const noexcept {
  const uint64_t end = offset + out.size();
  if (end > size() || end < offset) return EIO;
  for (uint64_t pos = offset; pos < end;) {
    const size_t level = level_of(pos / B);
    // Extend over the following blocks that come from the same level: one pread per run.
    uint64_t run_end = std::min(end, (pos / B + 1) * B);
    while (run_end < end && level_of(run_end / B) == level) run_end = std::min(end, run_end + B);
    if (const int err = read_level(level, pos, out.subspan(pos - offset, run_end - pos)); err != 0) {
      return err;
    }
    pos = run_end;
  }
  return 0;
}

int CowDisk::copy_up(uint64_t block) noexcept {
  uint8_t buf[B];
  const uint64_t from = block * B, len = std::min(from + B, size()) - from;
  int err = read_level(level_of(block), from, std::span(buf, len));
  if (err == 0) err = pwrite_all(top_->fd.get(), from, std::span<const uint8_t>(buf, len));
  if (err == 0) top_->map.set(block);
  return err;
}

int CowDisk::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
  const uint64_t end = offset + data.size();
  if (end > size() || end < offset) return EIO;
  for (uint64_t pos = offset; pos < end;) {
    const uint64_t block = pos / B;
    const uint64_t block_end = std::min((block + 1) * B, size());
    // A block the write covers only in part keeps its other bytes: copy it up first.
    if (!top_->map.test(block) && (pos != block * B || end < block_end)) {
      if (const int err = copy_up(block); err != 0) return err;
    }
    // Then one pwrite over this block and the following ones that are wholly covered or
    // already in the top (a partial, absent last block is copied up on the next turn).
    uint64_t run_end = std::min(end, block_end);
    while (run_end < end) {
      const uint64_t next = run_end / B;
      const uint64_t next_end = std::min((next + 1) * B, size());
      if (end < next_end && !top_->map.test(next)) break;
      run_end = std::min(end, next_end);
    }
    const int err = pwrite_all(top_->fd.get(), pos, data.subspan(pos - offset, run_end - pos));
    if (err != 0) return err;  // blocks not marked: reads still see the old content
    for (uint64_t b = block; b * B < run_end; ++b) top_->map.set(b);
    pos = run_end;
  }
  return 0;
}

int CowDisk::punch_hole(uint64_t offset, uint64_t len) noexcept {
  const uint64_t end = offset + len;
  if (end > size() || end < offset) return EIO;
  if (!can_punch_) return write_zeros_through(*this, offset, len);
  for (uint64_t pos = offset; pos < end;) {
    const uint64_t block = pos / B;
    const uint64_t block_end = std::min((block + 1) * B, size());
    if (pos != block * B || end < block_end) {  // a partial block: zeros through write()
      const uint64_t n = std::min(end, block_end) - pos;
      if (const int err = write_zeros_through(*this, pos, n); err != 0) return err;
      pos += n;
      continue;
    }
    // Whole blocks: a hole in the top reads as zeros once the blocks are marked as the top's.
    uint64_t run_end = block_end;
    while (run_end < end && std::min(run_end + B, size()) <= end) run_end = std::min(run_end + B, size());
    if (::fallocate(top_->fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(pos), static_cast<off_t>(run_end - pos)) != 0) {
      return errno;
    }
    for (uint64_t b = block; b * B < run_end; ++b) top_->map.set(b);
    pos = run_end;
  }
  return 0;
}

std::shared_ptr<const FrozenDisk> CowDisk::freeze() {
  // Everything that can fail comes before any member changes: a failed freeze leaves this
  // disk as it was.
  std::vector<std::shared_ptr<const DiskLayer>> layers = layers_;
  std::shared_ptr<DiskLayer> top = top_;
  if (top_->map.count() > 0) {
    layers.push_back(top_);  // sealed: the device is quiesced and writes only to the new top
    top = new_top(overlay_dir_, size());
    if (layers.size() > kMaxLayers) layers = {merge(layers, overlay_dir_, size())};
  }
  layers_ = std::move(layers);
  top_ = std::move(top);
  return std::make_shared<const DiskStack>(base_, layers_, overlay_dir_);
}

}  // namespace forkvm
