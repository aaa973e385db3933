// Vm::progress_report: where a guest that has not signalled ready is, for the boot-timeout
// errors of the Sandbox and the CLI (issue 10: tell a stuck guest from a slow one).
// Vm::kvm_counters: KVM's own event counters for the VM's vCPUs.
#include <thread>

#include "vmm/vcpu_report.hpp"
#include "vmm/vm_impl.hpp"

namespace forkvm {

namespace {
/// Between the two samples of each vCPU: long enough for a running guest to move, short
/// enough not to matter to a caller that is already reporting a timeout.
constexpr std::chrono::milliseconds kSampleGap{100};
}  // namespace

std::string Vm::progress_report() {
  // The vCPUs are parked for each sample (registers can only be read outside KVM_RUN) and
  // resumed afterwards unless the caller had paused them. lifecycle_mu keeps stop() and
  // snapshot() from running in between.
  std::lock_guard lifecycle(impl_->lifecycle_mu);
  const auto take = [this] {
    std::vector<VcpuSample> samples;
    // A vCPU stuck in a device call is sampled where it is (outside KVM_RUN, so its registers
    // can be read all the same): a report must not hang on it.
    for (auto& v : impl_->vcpus) v->pause(kSampleGap * 10);
    for (auto& v : impl_->vcpus) samples.push_back(v->sample());
    if (!impl_->user_paused) {
      for (auto& v : impl_->vcpus) v->resume();
    }
    return samples;
  };
  const auto first = take();
  std::this_thread::sleep_for(kSampleGap);
  const auto second = take();
  std::chrono::milliseconds waited{};
  std::optional<std::chrono::milliseconds> ready_after;
  {
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    std::lock_guard lock(impl_->mu);
    if (impl_->started) {
      waited = duration_cast<milliseconds>(Impl::Clock::now() - *impl_->started);
      // A restored VM that was ready is ready at its launch (Vm::Impl::restore_live).
      if (impl_->ready) ready_after = duration_cast<milliseconds>(*impl_->ready - *impl_->started);
    }
  }
  return format_stall(impl_->tail.total(), waited, first, second, kSampleGap, ready_after);
}

KvmCounters Vm::kvm_counters() const {
  KvmCounters out;
  // vcpu_stats is filled while the VM is built and never changes afterwards; each read is a
  // pread of the kernel's live counters, safe from any thread while the vCPUs run.
  out.available = !impl_->vcpu_stats.empty();
  for (const KvmStatsFd& s : impl_->vcpu_stats) {
    const auto add = [&s](std::string_view name, uint64_t& to) { to += s.value(name).value_or(0); };
    add("exits", out.exits);
    add("pf_taken", out.page_faults);
    add("pf_fixed", out.page_faults_fixed);
    add("halt_exits", out.halt_exits);
    add("mmio_exits", out.mmio_exits);
    add("io_exits", out.io_exits);
    add("irq_exits", out.irq_exits);
    add("irq_injections", out.irq_injections);
    add("insn_emulation", out.emulations);
  }
  return out;
}

}  // namespace forkvm
