// bench/host_symbols: a guest RIP that lies in host module code is named (kvm-lab's L1 kvm_amd
// after VMRUN, as a forked child once died at), guest kernel addresses are not.
#include "bench/host_symbols.hpp"

#include <gtest/gtest.h>

namespace forkvm::bench {
namespace {

const char* const kModules =
    "kvm_amd 163840 2 - Live 0xffffffffc033d000\n"
    "kvm 1146880 1 kvm_amd, Live 0xffffffffc0224000\n"
    "hidden 4096 0 - Live 0x0000000000000000\n"
    "garbage line\n";
const char* const kSyms =
    "ffffffff81000000 T _stext\n"
    "ffffffffc03510f0 t svm_vcpu_enter_exit\t[kvm_amd]\n"
    "ffffffffc0351170 t __svm_vcpu_run\t[kvm_amd]\n"
    "ffffffffc0224000 t kvm_something\t[kvm]\n"
    "nonsense\n";

HostModules host() {
  HostModules h;
  h.modules = parse_proc_modules(kModules);
  h.symbols = parse_module_symbols(kSyms);
  return h;
}

TEST(HostSymbols, ParsesModulesAndModuleSymbolsOnly) {
  const auto h = host();
  ASSERT_EQ(h.modules.size(), 2u);
  EXPECT_EQ(h.modules[0].name, "kvm_amd");
  EXPECT_EQ(h.modules[0].base, 0xffffffffc033d000ull);
  EXPECT_EQ(h.modules[0].size, 163840u);
  ASSERT_EQ(h.symbols.size(), 3u);  // _stext has no [module]
  EXPECT_EQ(h.symbols.front().name, "kvm_something");
}

TEST(HostSymbols, ResolvesAnAddressInsideAModule) {
  const auto h = host();
  EXPECT_EQ(resolve_host_address(0xffffffffc035120cull, h), "__svm_vcpu_run+0x9c [kvm_amd]");
  EXPECT_EQ(resolve_host_address(0xffffffffc0224010ull, h), "kvm_something+0x10 [kvm]");
  EXPECT_EQ(resolve_host_address(0xffffffff8105ed65ull, h), "");  // a guest kernel address
  EXPECT_EQ(resolve_host_address(0xffffffffc0500000ull, h), "");  // past every module
}

TEST(HostSymbols, ListsEachHostRipOfATraceOnce) {
  const auto h = host();
  const std::string trace =
      "kvm_exit: vcpu 0 reason npf rip 0xffffffff812cbe7e info1 0x1\n"
      "kvm_exit: vcpu 0 reason npf rip 0xffffffffc035120c info1 0x2\n"
      "kvm_exit: vcpu 0 reason shutdown rip 0xffffffffc035120c info1 0x0\n";
  EXPECT_EQ(host_code_rips(trace, h),
            "  guest RIP 0xffffffffc035120c is host code: __svm_vcpu_run+0x9c [kvm_amd]\n");
  EXPECT_EQ(host_code_rips("rip 0xffffffff812cbe7e", h), "");
  EXPECT_EQ(host_code_rips("rip 0xzz", h), "");
}

}  // namespace
}  // namespace forkvm::bench
