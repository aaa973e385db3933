#include "base/vcpu_gs_mark.hpp"

#include <asm/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace forkvm {

std::optional<uint64_t> parse_vcpu_gs_mark(const char* text) noexcept {
  if (text == nullptr || text[0] != '0' || (text[1] != 'x' && text[1] != 'X')) return std::nullopt;
  const char* digits = text + 2;
  const size_t n = std::strlen(digits);
  if (n == 0 || n > 12) return std::nullopt;
  uint64_t v = 0;
  // Every character a hex digit: from_chars stops at anything else (a sign, a space).
  const auto [end, ec] = std::from_chars(digits, digits + n, v, 16);
  if (ec != std::errc{} || end != digits + n) return std::nullopt;
  constexpr uint64_t kUserEnd = 1ull << 47;  // canonical user addresses are below it
  if (v == 0 || v >= kUserEnd || v % 4096 != 0) return std::nullopt;
  return v;
}

std::optional<uint64_t> vcpu_gs_mark() noexcept {
  static const std::optional<uint64_t> mark = [] {
    const char* text = std::getenv(kVcpuGsMarkVariable);
    if (text == nullptr || text[0] == '\0') return std::optional<uint64_t>{};
    const std::optional<uint64_t> v = parse_vcpu_gs_mark(text);
    if (!v) {
      std::fprintf(stderr,
                   "forkvm: %s='%.40s' ignored: it must be 0x and a non-zero, page-aligned "
                   "user address below 2^47\n",
                   kVcpuGsMarkVariable, text);
    }
    return v;
  }();
  return mark;
}

bool apply_vcpu_gs_mark() noexcept {
  const std::optional<uint64_t> mark = vcpu_gs_mark();
  if (!mark) return false;
  if (syscall(SYS_arch_prctl, ARCH_SET_GS, *mark) == 0) return true;
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    std::fprintf(stderr, "forkvm: %s: arch_prctl(ARCH_SET_GS) refused: %s\n", kVcpuGsMarkVariable,
                 std::strerror(errno));
  }
  return false;
}

std::string vcpu_gs_mark_note(std::string_view console) {
  const std::optional<uint64_t> mark = vcpu_gs_mark();
  if (!mark) return {};
  char high[17];
  std::snprintf(high, sizeof high, "%llx", static_cast<unsigned long long>(*mark >> 20));
  if (std::strlen(high) < 6 || console.find(high) == std::string_view::npos) return {};
  char full[24];
  std::snprintf(full, sizeof full, "%#llx", static_cast<unsigned long long>(*mark));
  return std::string("the guest printed a value near ") + full +
         ", the GS base this process's vCPU threads wear (" + kVcpuGsMarkVariable +
         "), which no guest can read: host state from below forkvm reaching the guest would "
         "explain it (tools/kvm-lab/README.md, \"Host state in a guest\")";
}

}  // namespace forkvm
