#include "vmm/vcpu_report.hpp"

#include <cinttypes>
#include <cstdio>
#include <variant>

#include "base/overloaded.hpp"
#include "base/text.hpp"

namespace forkvm {
namespace {

/// "long mode", "protected mode", "real mode" from CR0.PE and EFER.LMA.
const char* cpu_mode(const kvm_sregs& s) {
  constexpr uint64_t kCr0Pe = 1, kEferLma = 1u << 10;
  if ((s.cr0 & kCr0Pe) == 0) return "real mode";
  if ((s.efer & kEferLma) != 0) return s.cs.l ? "long mode" : "compatibility mode";
  return "protected mode";
}

}  // namespace

ExitNote note_of(const VcpuExit& exit) noexcept {
  using K = ExitNote::Kind;
  return std::visit(
      Overloaded{
          [](const IoIn& io) { return ExitNote{K::kIoIn, io.size, io.port, {}}; },
          [](const IoOut& io) { return ExitNote{K::kIoOut, io.size, io.port, {}}; },
          [](const MmioRead& m) {
            return ExitNote{K::kMmioRead, static_cast<uint8_t>(m.data.size()), m.addr, {}};
          },
          [](const MmioWrite& m) {
            return ExitNote{K::kMmioWrite, static_cast<uint8_t>(m.data.size()), m.addr, {}};
          },
          [](const Hlt&) { return ExitNote{K::kOther, 0, 0, "hlt"}; },
          [](const Shutdown&) { return ExitNote{K::kOther, 0, 0, "shutdown (triple fault)"}; },
          [](const SystemEvent& e) { return ExitNote{K::kOther, 0, e.type, "system event"}; },
          [](const Interrupted&) { return ExitNote{K::kOther, 0, 0, "interrupted"}; },
          [](const FailEntry& f) { return ExitNote{K::kOther, 0, f.reason, "entry failed"}; },
          [](const InternalError& e) { return ExitNote{K::kOther, 0, e.suberror, "internal error"}; },
          [](const RunFailed& r) {
            return ExitNote{K::kOther, 0, static_cast<uint64_t>(r.err), "KVM_RUN failed"};
          },
          [](const UnknownExit& u) { return ExitNote{K::kOther, 0, u.reason, "unknown exit"}; },
      },
      exit);
}

std::string to_string(const ExitNote& n) {
  const std::string w = hex(n.where) + "/" + std::to_string(n.size);
  switch (n.kind) {
    case ExitNote::Kind::kIoIn: return "in " + w;
    case ExitNote::Kind::kIoOut: return "out " + w;
    case ExitNote::Kind::kMmioRead: return "mmio read " + w;
    case ExitNote::Kind::kMmioWrite: return "mmio write " + w;
    case ExitNote::Kind::kOther: break;
  }
  std::string s(n.other);
  if (n.where != 0) s += " " + hex(n.where);
  return s;
}

void ExitHistory::record(const VcpuExit& exit) noexcept {
  if (std::holds_alternative<Interrupted>(exit)) {
    kicks_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const ExitNote note = note_of(exit);
  switch (note.kind) {
    case ExitNote::Kind::kIoIn:
    case ExitNote::Kind::kIoOut: io_.fetch_add(1, std::memory_order_relaxed); break;
    case ExitNote::Kind::kMmioRead:
    case ExitNote::Kind::kMmioWrite: mmio_.fetch_add(1, std::memory_order_relaxed); break;
    case ExitNote::Kind::kOther: other_.fetch_add(1, std::memory_order_relaxed); break;
  }
  ring_[next_ % kKept] = note;
  ++next_;
}

ExitHistory::Counts ExitHistory::counts() const noexcept {
  return {runs_.load(std::memory_order_relaxed), io_.load(std::memory_order_relaxed),
          mmio_.load(std::memory_order_relaxed), kicks_.load(std::memory_order_relaxed),
          other_.load(std::memory_order_relaxed)};
}

std::vector<ExitNote> ExitHistory::recent() const {
  std::vector<ExitNote> out;
  const uint64_t first = next_ > kKept ? next_ - kKept : 0;
  for (uint64_t i = first; i < next_; ++i) out.push_back(ring_[i % kKept]);
  return out;
}

std::vector<uint64_t> kernel_stack_words(std::span<const uint64_t> stack, size_t max) {
  std::vector<uint64_t> out;
  for (const uint64_t w : stack) {
    if (out.size() >= max) break;
    if (w >= kKernelImageStart && w < kKernelImageEnd) out.push_back(w);
  }
  return out;
}

std::string format_vcpu(const VcpuSample& now, const VcpuSample* before,
                        std::chrono::milliseconds interval) {
  std::string s = "vCPU " + std::to_string(now.index);
  if (now.thread_id != 0) s += " (host thread " + std::to_string(now.thread_id) + ")";
  s += std::string(now.finished ? " (stopped)" : "") + ":";
  if (now.sregs) s += std::string(" ") + cpu_mode(*now.sregs);
  if (now.regs) {
    const kvm_regs& r = *now.regs;
    s += ", RIP " + hex(r.rip);
    if (before != nullptr && before->regs) {
      s += before->regs->rip == r.rip
               ? " (unchanged over " + std::to_string(interval.count()) + " ms)"
               : " (was " + hex(before->regs->rip) + " " + std::to_string(interval.count()) + " ms earlier)";
    }
    s += ", RSP " + hex(r.rsp) + ", RFLAGS " + hex(r.rflags);
    if (now.sregs && r.rip == 0xfff0 && now.sregs->cs.base == 0xffff0000) {
      s += " (the reset state: KVM on AMD re-initialises a vCPU at a triple fault, so where it "
           "faulted is lost; the last exits below still show where it had been)";
    }
  } else {
    s += " registers unreadable";
  }
  if (now.sregs) {
    const kvm_sregs& r = *now.sregs;
    s += "\n  CR0 " + hex(r.cr0) + " CR2 " + hex(r.cr2) + " CR3 " + hex(r.cr3) + " CR4 " + hex(r.cr4) +
         " EFER " + hex(r.efer) + "\n  CS " + hex(r.cs.selector) + " SS " + hex(r.ss.selector) +
         " GDT " + hex(r.gdt.base) + "/" + hex(r.gdt.limit) + " IDT " + hex(r.idt.base) + "/" +
         hex(r.idt.limit);
  }
  if (now.events) {
    const kvm_vcpu_events& e = *now.events;
    s += "\n  events: exception " +
         (e.exception.injected || e.exception.pending ? std::to_string(e.exception.nr) : std::string("none")) +
         ", interrupt " + (e.interrupt.injected ? std::to_string(e.interrupt.nr) : std::string("none")) +
         ", NMI " + (e.nmi.pending || e.nmi.injected ? "pending" : "none") +
         (e.interrupt.shadow != 0 ? ", interrupt shadow" : "");
  }
  const ExitHistory::Counts& c = now.counts;
  s += "\n  KVM_RUN " + std::to_string(c.runs) + "; exits: io " + std::to_string(c.io) + ", mmio " +
       std::to_string(c.mmio) + ", other " + std::to_string(c.other) + ", host kicks " +
       std::to_string(c.kicks);
  if (before != nullptr) {
    s += " (" + std::to_string(c.exits() - before->counts.exits()) + " in the last " + std::to_string(interval.count()) + " ms)";
  }
  if (!now.kernel_stack.empty()) {
    // What the kernel's own oops prints as "? symbol" lines: symbolize with the guest's vmlinux.
    s += "\n  kernel stack from RSP up, words in the kernel image (unreliable, innermost first):";
    for (const uint64_t w : now.kernel_stack) s += " " + hex(w);
  }
  if (!now.recent.empty()) {
    s += "\n  last exits (oldest first):";
    for (const auto& n : now.recent) s += " " + to_string(n) + ";";
    s.pop_back();
  }
  return s;
}

std::string format_stall(uint64_t console_bytes, std::chrono::milliseconds waited,
                         const std::vector<VcpuSample>& first, const std::vector<VcpuSample>& second,
                         std::chrono::milliseconds interval,
                         std::optional<std::chrono::milliseconds> ready_after) {
  std::string s;
  const auto seconds = [](std::chrono::milliseconds t) {
    return std::to_string(t.count() / 1000) + "." + std::to_string(t.count() % 1000 / 100) + " s";
  };
  const std::string after = seconds(waited);
  if (ready_after) {
    s = "the guest signalled ready " + seconds(*ready_after) + " after its vCPUs started (" +
        after + " ago) and wrote " + std::to_string(console_bytes) +
        " bytes to its console; its vCPUs now:";
  } else if (console_bytes == 0) {
    s = "the guest wrote nothing to its console and never signalled ready in " + after +
        ": it is stuck (or very slow) before its console came up, e.g. in the kernel's "
        "decompressor or early boot";
  } else {
    s = "the guest wrote " + std::to_string(console_bytes) +
        " bytes to its console but never signalled ready in " + after + " (console tail below)";
  }
  std::vector<uint32_t> moved, still, stuck_irqs_off;
  for (size_t i = 0; i < second.size(); ++i) {
    const VcpuSample& now = second[i];
    const VcpuSample* before = i < first.size() ? &first[i] : nullptr;
    s += "\n" + format_vcpu(now, before, interval);
    if (before == nullptr || !before->regs || !now.regs) continue;
    const bool went =
        before->regs->rip != now.regs->rip || before->counts.exits() != now.counts.exits();
    (went ? moved : still).push_back(now.index);
    // Guest-controlled registers, read only to word the report. Kernel mode (CS RPL 0) with
    // RFLAGS.IF clear, on one instruction for the whole interval: no interrupt can reach it.
    if (!went && in_kernel_mode(now) && (now.regs->rflags & 0x200) == 0) {
      stuck_irqs_off.push_back(now.index);
    }
  }
  const auto list = [](const std::vector<uint32_t>& v) {
    std::string out = v.size() == 1 ? "vCPU " : "vCPUs ";
    for (size_t i = 0; i < v.size(); ++i) out += (i == 0 ? "" : ", ") + std::to_string(v[i]);
    return out;
  };
  if (!moved.empty() && still.empty()) {
    s += "\nthe vCPUs were still running guest code (slow or looping), not halted";
  } else if (moved.empty() && !still.empty()) {
    s += "\nno vCPU moved between the samples (halted or stuck on one instruction)";
  } else if (!moved.empty()) {
    s += "\n" + list(moved) + " still ran guest code; " + list(still) +
         " did not move between the samples (halted or stuck on one instruction)";
  }
  if (!stuck_irqs_off.empty()) {
    s += "\n" + list(stuck_irqs_off) + " did not move in " + std::to_string(interval.count()) +
         " ms with interrupts disabled (RFLAGS.IF=0) in kernel mode: spinning with interrupts off "
         "(e.g. on a spinlock) or halted for good; no interrupt reaches it, so work bound to it "
         "(its timers, its per-CPU work) waits";
  }
  return s;
}

}  // namespace forkvm
