// Vm::progress_report: where a guest that has not signalled ready is, for the boot-timeout
// errors of the Sandbox and the CLI (issue 10: tell a stuck guest from a slow one).
// Vm::kvm_counters: KVM's own event counters for the VM's vCPUs.
#include <algorithm>
#include <cstring>
#include <thread>

#include "vmm/vcpu_report.hpp"
#include "vmm/vm_impl.hpp"

namespace forkvm {

namespace {
/// Between the two samples of each vCPU: long enough for a running guest to move, short
/// enough not to matter to a caller that is already reporting a timeout.
constexpr std::chrono::milliseconds kSampleGap{100};
/// How much of a kernel-mode vCPU's stack the report reads, from RSP up.
constexpr uint64_t kStackScanBytes = 1024;

/// Fills `s.kernel_stack` for a vCPU parked in 64-bit kernel mode: up to kStackScanBytes from
/// its RSP, each page translated by KVM under the vCPU's own paging and read through the
/// checked GuestMemory. RSP and the page tables are the guest's: an unmapped or out-of-RAM page
/// ends the scan, never the report.
void scan_kernel_stack(VcpuSample& s, const VcpuThread& v, const GuestMemory& memory) {
  if (!s.regs || !in_kernel_mode(s) || !s.sregs->cs.l) return;
  std::vector<uint64_t> words;
  uint64_t gva = s.regs->rsp & ~uint64_t{7};
  const uint64_t end = gva + kStackScanBytes;
  while (gva < end && gva >= s.regs->rsp - 8) {  // the second test stops at a wrap past 2^64
    const uint64_t page_left = 4096 - (gva & 4095);
    const uint64_t len = std::min(page_left, end - gva);
    const auto gpa = v.translate(gva);
    if (!gpa) break;
    const auto bytes = memory.try_slice(*gpa, len);
    if (!bytes) break;
    for (size_t i = 0; i + 8 <= bytes->size(); i += 8) {
      uint64_t w = 0;
      std::memcpy(&w, bytes->data() + i, 8);
      words.push_back(w);
    }
    gva += len;
  }
  s.kernel_stack = kernel_stack_words(words);
}
}  // namespace

std::string Vm::progress_report() {
  // The vCPUs are parked for each sample (registers can only be read outside KVM_RUN) and
  // resumed afterwards unless the caller had paused them. lifecycle_mu keeps stop() and
  // snapshot() from running in between.
  std::lock_guard lifecycle(impl_->lifecycle_mu);
  // Only the second sample's stacks are printed (format_stall), so only it scans them: the scan
  // costs each vCPU two KVM_TRANSLATEs and a 1 KiB read while it is parked.
  const auto take = [this](bool scan_stacks) {
    std::vector<VcpuSample> samples;
    // A vCPU stuck in a device call is sampled where it is (outside KVM_RUN, so its registers
    // can be read all the same): a report must not hang on it.
    for (auto& v : impl_->vcpus) v->pause(kSampleGap * 10);
    for (auto& v : impl_->vcpus) {
      samples.push_back(v->sample());
      if (scan_stacks) scan_kernel_stack(samples.back(), *v, impl_->memory);  // still parked
    }
    if (!impl_->user_paused) {
      for (auto& v : impl_->vcpus) v->resume();
    }
    return samples;
  };
  const auto first = take(false);
  std::this_thread::sleep_for(kSampleGap);
  const auto second = take(true);
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
