// KvmHost::get: a process-wide cache of opened KVM devices, keyed by path.
#include "vmm/kvm_host.hpp"

#include <map>
#include <mutex>

#include "vmm/host_virt.hpp"
#include "vmm/state/msr_list.hpp"

namespace forkvm {

std::shared_ptr<const KvmHost> KvmHost::get(const std::string& device) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const KvmHost>> hosts;
  std::lock_guard lock(mu);
  if (auto it = hosts.find(device); it != hosts.end()) return it->second;
  // Before anything opens: a PVM /dev/kvm would build the VM fine and then spin in the guest's
  // decompressor until the caller's timeout (issue 10).
  require_standard_kvm(probe_host_virt(host_root_from_env()), device, pvm_allowed_by_env());
  KvmSystem kvm = KvmSystem::open(device);
  require_capabilities(kvm, {{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
                             {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
                             {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
                             {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
                             {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
                             {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
                             {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
                             {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"}});
  auto cpuid = kvm.supported_cpuid();
  auto msrs = state::msrs_to_save(kvm.msr_index_list());
  const bool tsc_deadline = kvm.check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
  auto host = std::make_shared<const KvmHost>(
      KvmHost{std::move(kvm), std::move(cpuid), std::move(msrs), tsc_deadline});
  hosts.emplace(device, host);
  return host;
}

}  // namespace forkvm
