// Host kernel module code, to recognise a guest RIP that is not the guest's at all. In kvm-lab the
// host is L1, whose modules (kvm, kvm_amd) load at fixed addresses; a forked child that died at,
// e.g., kvm_amd's __svm_vcpu_run+0x9c (the instruction after VMRUN) was handed the host's own
// state by the nested virtualization below it, which no guest and no VMM in user space can do.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace forkvm::bench {

/// One line of /proc/modules: where the module's memory lies.
struct HostModule {
  std::string name;
  uint64_t base = 0;
  uint64_t size = 0;
};

/// One module symbol of /proc/kallsyms.
struct HostSymbol {
  uint64_t address = 0;
  std::string name;
  std::string module;
};

/// The host's loaded modules and their symbols (empty when unreadable, e.g. without root).
struct HostModules {
  std::vector<HostModule> modules;
  std::vector<HostSymbol> symbols;  ///< ascending by address
};

/// Parses /proc/modules ("name size refs deps state 0xaddr"); lines without an address (hidden
/// by kptr_restrict: 0x0) are skipped.
std::vector<HostModule> parse_proc_modules(const std::string& text);

/// Parses the module symbols ("addr type name [module]") of /proc/kallsyms, sorted by address.
std::vector<HostSymbol> parse_module_symbols(const std::string& text);

/// "name+0xoff [module]" for an address inside a loaded module, "" otherwise.
std::string resolve_host_address(uint64_t address, const HostModules& host);

/// One line for every distinct "rip 0x..." in `trace` (KVM trace events of a guest's vCPU) that
/// lies in host module code, "" when none does.
std::string host_code_rips(const std::string& trace, const HostModules& host);

/// Reads /proc/modules and /proc/kallsyms.
HostModules read_host_modules();

}  // namespace forkvm::bench
