#include "devices/bus.hpp"

#include <cstdio>
#include <cstring>

#include "base/text.hpp"

namespace forkvm {

void Bus::insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len) {
  if (!device) throw BusError(name_ + " bus: null device at " + hex(base));
  if (len == 0) throw BusError(name_ + " bus: empty range at " + hex(base));
  // Inclusive last address; base + len - 1 must not wrap.
  if (len - 1 > UINT64_MAX - base) {
    throw BusError(name_ + " bus: range " + hex(base) + "+" + hex(len) + " overflows");
  }
  const uint64_t last = base + (len - 1);
  // The first range starting after `base`, and the one before it, are the only candidates
  // for an overlap.
  auto next = ranges_.upper_bound(base);
  if (next != ranges_.end() && next->first <= last) {
    throw BusError(name_ + " bus: range " + hex(base) + "+" + hex(len) + " overlaps " +
                   hex(next->first));
  }
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (base - prev->first < prev->second.len) {
      throw BusError(name_ + " bus: range " + hex(base) + "+" + hex(len) + " overlaps " +
                     hex(prev->first));
    }
  }
  ranges_.emplace(base, Entry{len, std::move(device)});
}

BusDevice* Bus::find(uint64_t addr, uint64_t size, uint64_t& offset) const noexcept {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return nullptr;
  --it;
  const uint64_t off = addr - it->first;  // addr >= base here
  if (off >= it->second.len || size > it->second.len - off) return nullptr;
  offset = off;
  return it->second.device.get();
}

void Bus::count_unmapped(bool is_write, uint64_t addr, uint64_t size) const noexcept {
  const uint64_t n = unmapped_.fetch_add(1, std::memory_order_relaxed);
  // Rate-limited: the first few and then every 2^k-th, so a probing guest cannot flood the log.
  if (n < 4 || (n & (n - 1)) == 0) {
    std::fprintf(stderr, "forkvm: unmapped %s %s at %s (size %llu, %llu so far)\n",
                 name_.c_str(), is_write ? "write" : "read", hex(addr).c_str(),
                 static_cast<unsigned long long>(size), static_cast<unsigned long long>(n + 1));
  }
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) const {
  std::memset(data.data(), fill_, data.size());
  uint64_t offset = 0;
  BusDevice* dev = find(addr, data.size(), offset);
  if (dev == nullptr) {
    count_unmapped(false, addr, data.size());
    return false;
  }
  dev->read(offset, data);
  return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
  uint64_t offset = 0;
  BusDevice* dev = find(addr, data.size(), offset);
  if (dev == nullptr) {
    count_unmapped(true, addr, data.size());
    return false;
  }
  dev->write(offset, data);
  return true;
}

}  // namespace forkvm
