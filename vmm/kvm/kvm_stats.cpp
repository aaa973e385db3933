#include "vmm/kvm/kvm_stats.hpp"

#include <linux/kvm.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "vmm/kvm/kvm_abi.hpp"

namespace forkvm {
namespace {

constexpr uint32_t kMaxNameSize = 256;    // KVM_STATS_NAME_SIZE is 48 in every kernel so far
constexpr uint32_t kMaxDescriptors = 4096;  // a few hundred in practice

}  // namespace

std::optional<std::vector<KvmStatDesc>> parse_kvm_stats_layout(const StatsReadAt& read_at) {
  kvm_stats_header h{};
  if (!read_at(0, &h, sizeof(h))) return std::nullopt;
  if (h.name_size == 0 || h.name_size > kMaxNameSize || h.num_desc > kMaxDescriptors) {
    return std::nullopt;
  }
  // Each descriptor is the fixed part followed by name_size bytes of name; the block is read
  // whole (at most 4096 * (16 + 256) bytes), so a short file fails here, not half-way.
  const size_t each = sizeof(kvm_abi::StatsDescFixed) + h.name_size;
  std::vector<unsigned char> block(each * h.num_desc);
  if (!block.empty() && !read_at(h.desc_offset, block.data(), block.size())) return std::nullopt;
  std::vector<KvmStatDesc> out;
  out.reserve(h.num_desc);
  for (uint32_t i = 0; i < h.num_desc; ++i) {
    const unsigned char* d = block.data() + i * each;
    kvm_abi::StatsDescFixed fixed{};
    std::memcpy(&fixed, d, sizeof(fixed));
    const char* name = reinterpret_cast<const char*>(d + sizeof(kvm_abi::StatsDescFixed));
    const size_t len = strnlen(name, h.name_size);
    if (len == h.name_size || len == 0) return std::nullopt;  // not NUL-terminated, or empty
    KvmStatDesc s;
    s.name.assign(name, len);
    s.flags = fixed.flags;
    s.size = fixed.size;
    // 32-bit offsets summed in 64 bits: cannot wrap. Reads past the end fail in value().
    s.offset = uint64_t{h.data_offset} + fixed.offset;
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<KvmStatsFd> KvmStatsFd::adopt(Fd fd) {
  if (!fd) return std::nullopt;
  const int raw = fd.get();
  auto layout = parse_kvm_stats_layout([raw](uint64_t off, void* out, size_t len) {
    return ::pread(raw, out, len, static_cast<off_t>(off)) == static_cast<ssize_t>(len);
  });
  if (!layout) return std::nullopt;
  return KvmStatsFd(std::move(fd), std::move(*layout));
}

KvmStatsFd::KvmStatsFd(Fd fd, std::vector<KvmStatDesc> layout)
    : fd_(std::move(fd)), layout_(std::move(layout)) {}

std::optional<uint64_t> KvmStatsFd::value(std::string_view name) const {
  for (const KvmStatDesc& s : layout_) {
    if (s.name != name) continue;
    if (s.size == 0) return std::nullopt;
    uint64_t v = 0;
    if (::pread(fd_.get(), &v, sizeof(v), static_cast<off_t>(s.offset)) != sizeof(v)) {
      return std::nullopt;
    }
    return v;
  }
  return std::nullopt;
}

}  // namespace forkvm
