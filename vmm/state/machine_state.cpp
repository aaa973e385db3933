#include "vmm/state/machine_state.hpp"

#include <algorithm>
#include <string>

#include "forkvm/errors.hpp"

namespace forkvm::state {

MachineState MachineState::capture(const VmFd& vm_fd, std::span<const VcpuFd* const> vcpu_fds,
                                   std::span<const uint32_t> msrs) {
  MachineState m;
  m.vcpus.reserve(vcpu_fds.size());
  for (const VcpuFd* vcpu : vcpu_fds) m.vcpus.push_back(VcpuState::capture(vm_fd, *vcpu, msrs));
  m.vm = VmKernelState::capture(vm_fd);
  return m;
}

void MachineState::check_count(size_t vcpu_fds) const {
  if (vcpu_fds != vcpus.size()) {
    throw SnapshotError("machine state: the snapshot has " + std::to_string(vcpus.size()) +
                        " vCPUs but the VM has " + std::to_string(vcpu_fds));
  }
}

void MachineState::restore(const VmFd& vm_fd, std::span<const VcpuFd* const> vcpu_fds) const {
  restore_ahead(vm_fd, vcpu_fds);
  restore_live(vm_fd, vcpu_fds);
}

void MachineState::restore_ahead(const VmFd& vm_fd, std::span<const VcpuFd* const> vcpu_fds) const {
  check_count(vcpu_fds.size());
  for (size_t i = 0; i < vcpus.size(); ++i) vcpus[i].restore_ahead(vm_fd, *vcpu_fds[i]);  // 1
  vm.restore_ahead(vm_fd, irqchip_ahead());                                              // 2
}

void MachineState::restore_live(const VmFd& vm_fd, std::span<const VcpuFd* const> vcpu_fds) const {
  check_count(vcpu_fds.size());
  for (size_t i = 0; i < vcpus.size(); ++i) vcpus[i].restore_live(*vcpu_fds[i]);  // 1
  vm.restore_live(vm_fd, irqchip_ahead());                                       // 2
}

bool MachineState::irqchip_ahead() const {
  return std::all_of(vcpus.begin(), vcpus.end(), [](const VcpuState& v) { return v.lapic_ahead(); });
}

}  // namespace forkvm::state
