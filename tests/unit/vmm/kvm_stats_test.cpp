// parse_kvm_stats_layout over hand-made stats files: the kernel's layout is still checked
// like any input (sizes, counts, blocks inside the file, NUL-terminated names).
#include "vmm/kvm/kvm_stats.hpp"

#include <linux/kvm.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace forkvm {
namespace {

constexpr uint32_t kNameSize = 48;

/// A stats file as the kernel writes it: header, then descriptors of 16 + name_size bytes (the
/// fixed fields at their ABI byte offsets, written by hand, not through a struct), then one u64
/// per descriptor.
std::vector<unsigned char> stats_file(const std::vector<std::string>& names,
                                      uint32_t name_size = kNameSize) {
  const size_t each = 16 + name_size;
  kvm_stats_header h{};
  h.name_size = name_size;
  h.num_desc = static_cast<uint32_t>(names.size());
  h.id_offset = sizeof(h);
  h.desc_offset = sizeof(h);
  h.data_offset = static_cast<uint32_t>(sizeof(h) + each * names.size());
  std::vector<unsigned char> f(h.data_offset + 8 * names.size());
  std::memcpy(f.data(), &h, sizeof(h));
  for (size_t i = 0; i < names.size(); ++i) {
    unsigned char* at = f.data() + h.desc_offset + i * each;
    const uint16_t size = 1;                            // bytes 6-7
    const auto offset = static_cast<uint32_t>(8 * i);  // bytes 8-11
    std::memcpy(at + 6, &size, 2);
    std::memcpy(at + 8, &offset, 4);
    std::memcpy(at + 16, names[i].data(), std::min<size_t>(names[i].size(), name_size));
    const uint64_t value = 100 + i;
    std::memcpy(f.data() + h.data_offset + 8 * i, &value, 8);
  }
  return f;
}

StatsReadAt reader(const std::vector<unsigned char>& f) {
  return [&f](uint64_t off, void* out, size_t len) {
    if (off > f.size() || len > f.size() - off) return false;
    std::memcpy(out, f.data() + off, len);
    return true;
  };
}

TEST(KvmStats, ParsesNamesAndValueOffsets) {
  const auto f = stats_file({"exits", "pf_taken"});
  const auto layout = parse_kvm_stats_layout(reader(f));
  ASSERT_TRUE(layout);
  ASSERT_EQ(layout->size(), 2u);
  EXPECT_EQ((*layout)[0].name, "exits");
  EXPECT_EQ((*layout)[1].name, "pf_taken");
  EXPECT_EQ((*layout)[1].size, 1u);
  uint64_t v = 0;
  ASSERT_TRUE(reader(f)((*layout)[1].offset, &v, 8));
  EXPECT_EQ(v, 101u);
}

TEST(KvmStats, RefusesBrokenLayouts) {
  auto f = stats_file({"exits"});
  auto header = [&f]() -> kvm_stats_header& { return *reinterpret_cast<kvm_stats_header*>(f.data()); };
  header().name_size = 0;
  EXPECT_FALSE(parse_kvm_stats_layout(reader(f)));
  header().name_size = 100000;
  EXPECT_FALSE(parse_kvm_stats_layout(reader(f))) << "an absurd name size";
  header().name_size = kNameSize;
  header().num_desc = 1u << 30;
  EXPECT_FALSE(parse_kvm_stats_layout(reader(f))) << "an absurd descriptor count";
  header().num_desc = 2;
  EXPECT_FALSE(parse_kvm_stats_layout(reader(f))) << "descriptors past the end of the file";
  header().num_desc = 1;
  header().desc_offset = 0xffffff00u;
  EXPECT_FALSE(parse_kvm_stats_layout(reader(f)));

  const std::vector<unsigned char> short_file(10);
  EXPECT_FALSE(parse_kvm_stats_layout(reader(short_file))) << "shorter than a header";
  // A name that fills its whole field has no NUL.
  const auto unterminated = stats_file({std::string(kNameSize, 'x')});
  EXPECT_FALSE(parse_kvm_stats_layout(reader(unterminated)));
}

}  // namespace
}  // namespace forkvm
