#include "vmm/state/cpu_features.hpp"

#include <cstdio>

#include "forkvm/errors.hpp"

namespace forkvm::state {
namespace {

/// A register of a leaf whose bits are features, with the bits KVM does not report.
struct FeatureReg {
  uint32_t leaf;
  uint32_t subleaf;
  char reg;
  uint32_t ignored;  ///< bits set by the guest OS or by userspace, not by KVM support
};

// Intel SDM Vol. 2A "CPUID", AMD APM Vol. 3 App. E, Linux Documentation/virt/kvm/x86/cpuid.rst.
constexpr FeatureReg kRegs[] = {
    {0x1, 0, 'c', (1u << 24) | (1u << 27) | (1u << 31)},  // TSC_DEADLINE, OSXSAVE, HYPERVISOR
    {0x1, 0, 'd', 0},
    {0x7, 0, 'b', 0},
    {0x7, 0, 'c', 1u << 4},  // OSPKE
    {0x7, 0, 'd', 0},
    {0x7, 1, 'a', 0},
    {0xd, 0, 'a', 0},
    {0xd, 0, 'd', 0},
    {0xd, 1, 'a', 0},
    {0x80000001, 0, 'c', 0},
    {0x80000001, 0, 'd', 0},
    {0x80000008, 0, 'b', 0},
    {0x40000001, 0, 'a', 0},
};

struct Name {
  uint32_t leaf;
  uint32_t subleaf;
  char reg;
  unsigned bit;
  const char* name;
};

constexpr Name kNames[] = {
    {0x1, 0, 'c', 0, "sse3"},      {0x1, 0, 'c', 1, "pclmulqdq"}, {0x1, 0, 'c', 9, "ssse3"},
    {0x1, 0, 'c', 12, "fma"},      {0x1, 0, 'c', 13, "cx16"},     {0x1, 0, 'c', 19, "sse4_1"},
    {0x1, 0, 'c', 20, "sse4_2"},   {0x1, 0, 'c', 21, "x2apic"},   {0x1, 0, 'c', 22, "movbe"},
    {0x1, 0, 'c', 23, "popcnt"},   {0x1, 0, 'c', 25, "aes"},      {0x1, 0, 'c', 26, "xsave"},
    {0x1, 0, 'c', 28, "avx"},      {0x1, 0, 'c', 29, "f16c"},     {0x1, 0, 'c', 30, "rdrand"},
    {0x1, 0, 'd', 0, "fpu"},       {0x1, 0, 'd', 4, "tsc"},       {0x1, 0, 'd', 5, "msr"},
    {0x1, 0, 'd', 8, "cx8"},       {0x1, 0, 'd', 9, "apic"},      {0x1, 0, 'd', 15, "cmov"},
    {0x1, 0, 'd', 16, "pat"},      {0x1, 0, 'd', 19, "clflush"},  {0x1, 0, 'd', 23, "mmx"},
    {0x1, 0, 'd', 24, "fxsr"},     {0x1, 0, 'd', 25, "sse"},      {0x1, 0, 'd', 26, "sse2"},
    {0x7, 0, 'b', 0, "fsgsbase"},  {0x7, 0, 'b', 3, "bmi1"},      {0x7, 0, 'b', 4, "hle"},
    {0x7, 0, 'b', 5, "avx2"},      {0x7, 0, 'b', 7, "smep"},      {0x7, 0, 'b', 8, "bmi2"},
    {0x7, 0, 'b', 9, "erms"},      {0x7, 0, 'b', 10, "invpcid"},  {0x7, 0, 'b', 11, "rtm"},
    {0x7, 0, 'b', 16, "avx512f"},  {0x7, 0, 'b', 17, "avx512dq"}, {0x7, 0, 'b', 18, "rdseed"},
    {0x7, 0, 'b', 19, "adx"},      {0x7, 0, 'b', 20, "smap"},     {0x7, 0, 'b', 21, "avx512ifma"},
    {0x7, 0, 'b', 23, "clflushopt"}, {0x7, 0, 'b', 24, "clwb"},   {0x7, 0, 'b', 26, "avx512pf"},
    {0x7, 0, 'b', 27, "avx512er"}, {0x7, 0, 'b', 28, "avx512cd"}, {0x7, 0, 'b', 29, "sha_ni"},
    {0x7, 0, 'b', 30, "avx512bw"}, {0x7, 0, 'b', 31, "avx512vl"},
    {0x7, 0, 'c', 1, "avx512vbmi"}, {0x7, 0, 'c', 2, "umip"},     {0x7, 0, 'c', 3, "pku"},
    {0x7, 0, 'c', 6, "avx512_vbmi2"}, {0x7, 0, 'c', 8, "gfni"},   {0x7, 0, 'c', 9, "vaes"},
    {0x7, 0, 'c', 10, "vpclmulqdq"}, {0x7, 0, 'c', 11, "avx512_vnni"},
    {0x7, 0, 'c', 12, "avx512_bitalg"}, {0x7, 0, 'c', 14, "avx512_vpopcntdq"},
    {0x7, 0, 'c', 22, "rdpid"},    {0x7, 0, 'd', 4, "fsrm"},      {0x7, 0, 'd', 8, "avx512_vp2intersect"},
    {0x7, 0, 'd', 14, "serialize"}, {0x7, 0, 'd', 22, "amx_bf16"}, {0x7, 0, 'd', 23, "avx512_fp16"},
    {0x7, 0, 'd', 24, "amx_tile"}, {0x7, 0, 'd', 25, "amx_int8"}, {0x7, 0, 'd', 26, "spec_ctrl"},
    {0x7, 1, 'a', 4, "avx_vnni"},  {0x7, 1, 'a', 5, "avx512_bf16"},
    {0xd, 0, 'a', 0, "xsave:x87"}, {0xd, 0, 'a', 1, "xsave:sse"}, {0xd, 0, 'a', 2, "xsave:avx"},
    {0xd, 0, 'a', 3, "xsave:bndregs"}, {0xd, 0, 'a', 4, "xsave:bndcsr"},
    {0xd, 0, 'a', 5, "xsave:opmask"}, {0xd, 0, 'a', 6, "xsave:zmm_hi256"},
    {0xd, 0, 'a', 7, "xsave:hi16_zmm"}, {0xd, 0, 'a', 9, "xsave:pkru"},
    {0xd, 0, 'a', 17, "xsave:xtilecfg"}, {0xd, 0, 'a', 18, "xsave:xtiledata"},
    {0xd, 1, 'a', 0, "xsaveopt"},  {0xd, 1, 'a', 1, "xsavec"},    {0xd, 1, 'a', 3, "xsaves"},
    {0x80000001, 0, 'c', 0, "lahf_lm"}, {0x80000001, 0, 'c', 5, "abm"},
    {0x80000001, 0, 'c', 6, "sse4a"}, {0x80000001, 0, 'c', 8, "3dnowprefetch"},
    {0x80000001, 0, 'd', 11, "syscall"}, {0x80000001, 0, 'd', 20, "nx"},
    {0x80000001, 0, 'd', 26, "pdpe1gb"}, {0x80000001, 0, 'd', 27, "rdtscp"},
    {0x80000001, 0, 'd', 29, "lm"},
    {0x40000001, 0, 'a', 0, "kvmclock"}, {0x40000001, 0, 'a', 3, "kvmclock2"},
    {0x40000001, 0, 'a', 4, "kvm_async_pf"}, {0x40000001, 0, 'a', 5, "kvm_steal_time"},
    {0x40000001, 0, 'a', 6, "kvm_pv_eoi"}, {0x40000001, 0, 'a', 24, "kvmclock_stable"},
};

const kvm_cpuid_entry2* find(std::span<const kvm_cpuid_entry2> e, uint32_t leaf, uint32_t sub) {
  for (const auto& x : e) {
    // Leaves without KVM_CPUID_FLAG_SIGNIFCANT_INDEX ignore the subleaf.
    const bool indexed = (x.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0;
    if (x.function == leaf && (!indexed || x.index == sub)) return &x;
  }
  return nullptr;
}

uint32_t reg_of(const kvm_cpuid_entry2& e, char reg) {
  switch (reg) {
    case 'a': return e.eax;
    case 'b': return e.ebx;
    case 'c': return e.ecx;
    default: return e.edx;
  }
}

std::string where(uint32_t leaf, uint32_t sub, char reg, unsigned bit) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "leaf 0x%x.%u e%cx bit %u", leaf, sub, reg, bit);
  return buf;
}

std::string name_of(uint32_t leaf, uint32_t sub, char reg, unsigned bit) {
  for (const auto& n : kNames) {
    if (n.leaf == leaf && n.subleaf == sub && n.reg == reg && n.bit == bit) return n.name;
  }
  return where(leaf, sub, reg, bit);
}

}  // namespace

std::vector<MissingFeature> missing_cpu_features(std::span<const kvm_cpuid_entry2> snapshot,
                                                 std::span<const kvm_cpuid_entry2> host) {
  std::vector<MissingFeature> missing;
  for (const FeatureReg& r : kRegs) {
    const kvm_cpuid_entry2* want = find(snapshot, r.leaf, r.subleaf);
    if (want == nullptr) continue;
    const kvm_cpuid_entry2* have = find(host, r.leaf, r.subleaf);
    const uint32_t lacking = reg_of(*want, r.reg) & ~(have ? reg_of(*have, r.reg) : 0u) & ~r.ignored;
    for (unsigned bit = 0; bit < 32; ++bit) {
      if (lacking & (1u << bit)) {
        missing.push_back({r.leaf, r.subleaf, r.reg, bit, name_of(r.leaf, r.subleaf, r.reg, bit)});
      }
    }
  }
  return missing;
}

void require_cpu_features(std::span<const kvm_cpuid_entry2> snapshot,
                          std::span<const kvm_cpuid_entry2> host) {
  const auto missing = missing_cpu_features(snapshot, host);
  if (missing.empty()) return;
  std::string msg = "cpu features: this host's CPU (as KVM offers it) lacks features the snapshot uses:";
  for (size_t i = 0; i < missing.size(); ++i) {
    const auto& m = missing[i];
    msg += (i ? ", " : " ") + m.name;
    if (m.name.rfind("leaf ", 0) != 0) msg += " (" + where(m.leaf, m.subleaf, m.reg, m.bit) + ")";
  }
  throw SnapshotError(msg);
}

}  // namespace forkvm::state
