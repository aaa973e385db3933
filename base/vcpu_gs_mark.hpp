// A diagnostic for nested labs: a GS base of our own on every vCPU thread, so that host state
// leaking into a guest shows under its own name (tools/kvm-lab/README.md, "Host state in a
// guest"). GuestError names it when a guest's console shows it.
//
// With FORKVM_DEBUG_VCPU_GS_BASE set to a page-aligned user address in hex, each vCPU thread
// sets that address as its own GS base (arch_prctl(ARCH_SET_GS)) before it first enters the
// guest. Nothing in the process reads GS on x86-64 (glibc's thread pointer is FS), and a
// guest cannot read a host thread's GS base. But SVM hardware keeps the host's GS base of user
// space (the kernel's MSR_KERNEL_GS_BASE while it runs KVM_RUN) in the save area that VMSAVE
// and VMLOAD move around each VM entry and exit: a guest that oopses with this value in its GS
// or KERNEL_GS_BASE has been handed host state by whatever runs below forkvm (the host KVM, or
// the emulator of the CPU it runs on), where by default both would read 0 and look like the
// guest's own bug. kvm-lab sets it for every command it runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace forkvm {

/// The name of the environment variable.
inline constexpr const char* kVcpuGsMarkVariable = "FORKVM_DEBUG_VCPU_GS_BASE";

/// Parses a mark: "0x" and 1..12 hex digits, a non-zero multiple of 4096 below 2^47 (a
/// canonical user address). nullopt for anything else.
std::optional<uint64_t> parse_vcpu_gs_mark(const char* text) noexcept;

/// FORKVM_DEBUG_VCPU_GS_BASE's mark, read once per process: nullopt when unset, and when set to
/// something parse_vcpu_gs_mark() refuses (said once on stderr).
std::optional<uint64_t> vcpu_gs_mark() noexcept;

/// Sets the calling thread's GS base to vcpu_gs_mark(), when there is one. Called by each vCPU
/// thread before its system-call filter (which does not allow arch_prctl). Returns whether the
/// mark is set; a refusal from the kernel is said once on stderr. Never throws.
bool apply_vcpu_gs_mark() noexcept;

/// A sentence for an error about a guest whose console output shows the mark, "" otherwise (and
/// when there is no mark). It looks for the mark's hex digits above its low 20 bits (at least 6
/// of them, "6d61726" for kvm-lab's), so that a guest register holding the mark plus a small
/// offset (a per-CPU variable's address: CR2 in the oops) is found too, as long as the sum stays
/// in the mark's 1 MiB-aligned megabyte (kvm-lab's mark leaves 320 KiB above it, more than the
/// guest kernel's per-CPU variables span). The console is the guest's own output: the sentence
/// says what the guest printed and what would explain it, nothing more.
std::string vcpu_gs_mark_note(std::string_view console);

}  // namespace forkvm
