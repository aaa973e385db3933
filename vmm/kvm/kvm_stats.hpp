// KvmStatsFd: KVM's binary statistics of one VM or vCPU (KVM_GET_STATS_FD, Linux 5.14+).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.hpp"

namespace forkvm {

/// Where one statistic lives in a stats file (Documentation/virt/kvm/api.rst, "KVM_GET_STATS_FD").
struct KvmStatDesc {
  std::string name;
  uint32_t flags = 0;   ///< KVM_STATS_TYPE_* | KVM_STATS_UNIT_* | KVM_STATS_BASE_*
  uint16_t size = 0;    ///< number of u64 values
  uint64_t offset = 0;  ///< file offset of the first value (data block + descriptor offset)
};

/// Reads `len` bytes at file offset `off` into `out`; false when the file has fewer.
using StatsReadAt = std::function<bool(uint64_t off, void* out, size_t len)>;

/// Parses a stats file's header and descriptor block through `read_at`. The layout comes from
/// the kernel, but is checked like any input: a name size of 1..256 bytes, at most 4096
/// descriptors, every block inside the file as `read_at` sees it, names NUL-terminated. Returns
/// nullopt for a file that breaks any of these.
std::optional<std::vector<KvmStatDesc>> parse_kvm_stats_layout(const StatsReadAt& read_at);

/// An open stats file of one VM or vCPU, with its layout read once. Reading a value is a pread
/// that takes no KVM lock, so it works while the vCPU runs (unlike KVM_GET_STATS_FD itself,
/// which waits for KVM_RUN to return: open it before the vCPU first runs).
class KvmStatsFd {
 public:
  /// Takes ownership of a descriptor from KVM_GET_STATS_FD; nullopt if its layout is unusable.
  static std::optional<KvmStatsFd> adopt(Fd fd);

  /// The first value of the statistic `name`, or nullopt when this kernel has no such
  /// statistic or it cannot be read.
  std::optional<uint64_t> value(std::string_view name) const;
  const std::vector<KvmStatDesc>& layout() const noexcept { return layout_; }

 private:
  KvmStatsFd(Fd fd, std::vector<KvmStatDesc> layout);
  Fd fd_;
  std::vector<KvmStatDesc> layout_;
};

}  // namespace forkvm
