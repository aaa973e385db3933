// Diagnostics of a vCPU for errors: a small history of its last exits, counters of its exits by
// kind, and a sample of its registers; formatted so that a stuck guest (a boot that never
// signals ready) or a dead one (a triple fault) can be told apart from a slow one by reading the
// error alone (issues 10 and 11).
#pragma once

#include <linux/kvm.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/kvm/vcpu_exit.hpp"

namespace forkvm {

/// One exit, without its data: enough to describe it later.
struct ExitNote {
  enum class Kind : uint8_t { kIoIn, kIoOut, kMmioRead, kMmioWrite, kOther };
  Kind kind = Kind::kOther;
  uint8_t size = 0;      ///< access width (I/O and MMIO)
  uint64_t where = 0;    ///< port or guest-physical address
  std::string_view other;  ///< for kOther: a static name ("hlt", "shutdown", ...)
};

/// The note for `exit`.
ExitNote note_of(const VcpuExit& exit) noexcept;
/// "out 0x3f8/1", "mmio read 0xd0000000/4", "shutdown", ...
std::string to_string(const ExitNote& note);

/// Exit counters and the last few exits of one vCPU. Written only by the vCPU's own thread;
/// the counters may be read at any time (relaxed), the history only while the vCPU is parked
/// or finished (the VcpuThread's pause handshake orders it).
class ExitHistory {
 public:
  static constexpr size_t kKept = 8;
  struct Counts {
    uint64_t runs = 0;   ///< KVM_RUN calls
    uint64_t io = 0;     ///< port I/O exits
    uint64_t mmio = 0;   ///< MMIO exits
    uint64_t kicks = 0;  ///< KVM_RUN interrupted by a host request
    uint64_t other = 0;  ///< everything else
    /// Exits the guest caused (I/O, MMIO, everything else), host kicks not counted.
    uint64_t exits() const noexcept { return io + mmio + other; }
  };

  void record_run() noexcept { runs_.fetch_add(1, std::memory_order_relaxed); }
  void record(const VcpuExit& exit) noexcept;
  Counts counts() const noexcept;
  /// The last exits (at most kKept), oldest first; kicks are not kept.
  std::vector<ExitNote> recent() const;

 private:
  std::atomic<uint64_t> runs_{0}, io_{0}, mmio_{0}, kicks_{0}, other_{0};
  std::array<ExitNote, kKept> ring_{};
  uint64_t next_ = 0;  ///< notes ever written into ring_
};

/// What one vCPU looked like at one moment.
struct VcpuSample {
  uint32_t index = 0;
  /// The host thread running it (its kernel tid, as KVM's trace events show it); 0 if unknown.
  int thread_id = 0;
  bool finished = false;       ///< its thread had left its loop (the VM stopped)
  std::optional<kvm_regs> regs;    ///< absent when KVM refused to read them
  std::optional<kvm_sregs> sregs;
  std::optional<kvm_vcpu_events> events;
  ExitHistory::Counts counts;
  std::vector<ExitNote> recent;
  /// For a vCPU in kernel mode, when the sampler scanned its stack (Vm::progress_report scans
  /// in its second sample only): the words on its stack from RSP up (1 KiB at most) that fall in
  /// the kernel image's mapping, innermost first (kernel_stack_words()); empty otherwise.
  std::vector<uint64_t> kernel_stack;
};

/// Whether the sample shows the vCPU in kernel mode: its CS selector's RPL is 0 (CPL 0).
/// False when its segment registers could not be read. Guest-controlled, read only to word a
/// report.
inline bool in_kernel_mode(const VcpuSample& s) noexcept {
  return s.sregs && (s.sregs->cs.selector & 3) == 0;
}

/// Where the x86-64 Linux kernel image is mapped (its text, data and modules): a stack word in
/// this range is likely a return address.
inline constexpr uint64_t kKernelImageStart = 0xffffffff80000000ull;
inline constexpr uint64_t kKernelImageEnd = 0xffffffffc0000000ull;

/// The words of `stack` (read from a guest stack, innermost first) that fall in the kernel
/// image's mapping, at most `max` of them. Guest-controlled data, only filtered and printed.
std::vector<uint64_t> kernel_stack_words(std::span<const uint64_t> stack, size_t max = 24);

/// A multi-line account of one vCPU: mode, RIP/RSP/RFLAGS, control registers, EFER, CS/SS,
/// GDT/IDT, pending events, run and exit counts, and the last exits. When `before` is given (the
/// same vCPU sampled earlier), says how far RIP moved and how many exits happened since, and
/// `interval` is the time between the samples.
std::string format_vcpu(const VcpuSample& now, const VcpuSample* before = nullptr,
                        std::chrono::milliseconds interval = {});

/// The account of a guest after `waited` since its vCPUs started: when it has not signalled
/// ready (`ready_after` empty), whether it wrote anything to its console (`console_bytes`);
/// else that it did, `ready_after` in (a guest whose requests went unanswered). Then each vCPU
/// (two samples each, `interval` apart, as from format_vcpu), which of them moved, and any that
/// sat on one instruction in kernel mode with interrupts disabled (no interrupt can reach such a
/// vCPU: a spin with interrupts off, or a halt for good). Ends without a newline.
std::string format_stall(uint64_t console_bytes, std::chrono::milliseconds waited,
                         const std::vector<VcpuSample>& first, const std::vector<VcpuSample>& second,
                         std::chrono::milliseconds interval,
                         std::optional<std::chrono::milliseconds> ready_after = std::nullopt);

}  // namespace forkvm
