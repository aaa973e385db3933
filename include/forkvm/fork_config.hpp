// The options and timings of forking: how a Template keeps VMs ready, how one child is made,
// and where the time of a fork went. Used by forkvm::Template (template.hpp) and
// Sandbox::fork() (sandbox.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "forkvm/egress.hpp"
#include "forkvm/vm.hpp"

namespace forkvm {

/// How a Template opens its image and keeps VMs ready.
struct TemplateOptions {
  /// Re-hash the snapshot's memory file when it is opened (once per Template, never per fork).
  bool verify_memory = true;
  /// VMs prepared ahead of time (Vm::prepare: KVM VM, memory mapped over the template, devices,
  /// vCPUs) and refilled on a background thread, so that fork() only restores state and starts
  /// the vCPUs. 0: every fork prepares its own VM.
  size_t pool_size = 0;
  /// Every VM the template prepares (pooled, or by fork() itself: no pool, an empty one, a
  /// child with its own NIC) takes, before its vCPUs run, the guest pages a child of the image
  /// touched up to the end of its first exec (Vm::touched_memory(), prefault_memory()): the
  /// ones it wrote are copied, the ones it read mapped, so that a child's agent connect and
  /// first exec do not stop on a host page fault for each. Costs each VM that many private
  /// pages ahead of time (ForkTimings::prefaulted_bytes), which the child would write anyway,
  /// and a fork() that prepares its own VM the time to take them (less than its child's first
  /// exec then saves). Learned from the first three children whose first exec
  /// (Sandbox::exec, exec_shell, exec_stream) succeeds, or known already from the image
  /// (VmImage::first_touches(): another Template or a Sandbox::restore of it taught it); VMs
  /// pooled before take them (and what later lessons add) then.
  bool prefault = true;
  /// With prefault: also map those pages into each pooled VM's NPT/EPT tables
  /// (KVM_PRE_FAULT_MEMORY, Linux 6.10+ with nested paging), so the child's first touches take
  /// no nested page fault either. Costs each pooled VM the page tables for them (about 1/512 of
  /// their size) and the refill thread the time. ForkTimings::premapped_bytes says what was.
  bool premap = true;
  /// With a pool and prefault, for an image that knows no first touches yet: the pool's refill
  /// thread first makes one child of its own (as fork() would, its console going to `console`
  /// like every child's), runs exec(["true"]) in it, which teaches the image the pages a first
  /// exec touches, and shuts it down; then it fills the pool. So the first child a caller
  /// forks takes those pages ahead instead of faulting each in during its first exec (in
  /// kvm-lab an unlearned child's first exec took 3-6x a learned one's). Costs one VM's
  /// launch, agent connect and exec, off every fork's path; a fork made before it ends is
  /// made as without it. TemplateStats::warmed_up and warm_up_error say how it went.
  bool warm_up = true;
  /// While the pool still holds a VM, its refill thread waits before replacing one a fork took
  /// until that fork's child has finished its first exec (Sandbox::exec, exec_shell,
  /// exec_stream), or this long at most: preparing a VM is CPU and memory-map work that, on a
  /// host with few free CPUs, slows the new child's first answer when it runs beside it. A
  /// fork that empties the pool starts the refill at once. 0: refill at once after every fork.
  std::chrono::milliseconds refill_hold{1000};
  /// Where the children's private temp dirs (holding their vsock sockets) are made; empty:
  /// $TMPDIR or /tmp. Keep it short (Unix socket paths are limited to 107 bytes).
  std::string runtime_dir;
  /// Receives every child's serial console output (with no indication of which child);
  /// optional. A child's console tail is always kept (Sandbox::console_tail()).
  std::function<void(std::string_view)> console;
  /// The KVM device to open.
  std::string kvm_device = "/dev/kvm";
  /// The children's egress policy unless their ForkConfig gives one. Unset: a template made
  /// from a sandbox (Sandbox::make_template, Sandbox::fork) gives its children the sandbox's;
  /// one opened from a snapshot directory denies everything.
  std::optional<EgressConfig> egress;
  /// For an image with a network device (VmImage::has_net()): the NIC of each VM the template
  /// prepares, pooled or not, called on the thread that prepares it (the pool's own thread,
  /// or fork()'s). Each child needs its own TAP: the pattern is one network namespace per
  /// child with the same TAP name and guest address (tools/net/forkvm-netns, README "Network").
  /// A ForkConfig::net overrides it for that child. Unset with such an image, a fork without
  /// ForkConfig::net fails with ConfigError. Each child gets a fresh MAC unless the NetConfig
  /// names one.
  std::function<NetConfig()> net;
  /// Accept an image taken while secrets were set in the guest (VmImage::has_secrets(),
  /// Sandbox::set_secret): every child then holds them. Without it, open() and from_image()
  /// (so Sandbox::make_template()) refuse such an image with ConfigError.
  bool allow_secrets = false;
};

/// How one child is made.
struct ForkConfig {
  /// From the fork() call to "the agent answers its first request".
  std::chrono::milliseconds boot_timeout{60000};
  /// Deadline of each non-exec request (see AgentClientOptions::request_timeout).
  std::chrono::milliseconds request_timeout{30000};
  /// The child's hostname (1..64 of [A-Za-z0-9.-]); nullopt keeps the template's.
  std::optional<std::string> hostname;
  /// The child's egress policy; nullopt: the template's (TemplateOptions::egress). Each child
  /// has its own proxy, so its traffic, limits and audit are its own.
  std::optional<EgressConfig> egress;
  /// The child's NIC, for an image with a network device (TemplateOptions::net otherwise).
  /// Such a fork does not take a pooled VM: it prepares its own with this NIC. The guest's
  /// interface keeps its addresses and routes and moves to the child's MAC (fresh unless set).
  std::optional<NetConfig> net;
  /// Sandbox::fork() only: fork a sandbox whose guest holds secrets (Sandbox::set_secret, not
  /// cleared), so that the child holds them too (TemplateOptions::allow_secrets). Without it,
  /// such a fork throws ConfigError. Ignored by Template::fork().
  bool allow_secrets = false;
};

/// Where the time of one fork went (Sandbox::fork_timings()).
struct ForkTimings {
  /// Sandbox::fork() only: pausing the parent, capturing it and freezing its memory.
  std::chrono::nanoseconds freeze{};
  /// Sandbox::fork() only: the freeze found the pages the parent wrote in KVM's dirty log and
  /// the VMM's write log instead of scanning its RAM (VmImage::written_pages_logged(): a parent
  /// that was itself forked or restored).
  bool freeze_logged = false;
  /// Building the child VM, phase by phase (the prepare phases are zero for a pooled VM: they
  /// happened ahead of time).
  VmBuildPhases vm;
  /// Whether the VM came from the template's pool.
  bool pooled = false;
  /// From the fork() call until the child's vCPUs were ready to run (state restored, threads
  /// started): the fork latency.
  std::chrono::nanoseconds to_vcpus_ready{};
  /// From the fork() call until the agent answered and the child had its identity.
  std::chrono::nanoseconds to_ready{};
  /// Of to_ready: connecting to the agent until it accepted and greeted (the guest first
  /// handles the RST of its old connection, then accepts; zero when the child carried the
  /// parent's connection, see agent_carried), and the first request on that connection, which
  /// gives the child its identity (entropy with a CRNG reseed, wall clock, hostname) and is the
  /// proof that the agent serves: no ping before it.
  std::chrono::nanoseconds agent_connect{};
  std::chrono::nanoseconds identity{};
  /// Of agent_connect: until the agent accepted the connection and greeted (the rest is the
  /// ping), and how many connection attempts that took (1 unless the guest refused at first).
  std::chrono::nanoseconds agent_accept{};
  unsigned agent_attempts = 0;
  /// Whether the child took over the agent connection its image carried (the parent's client
  /// was quiet at the freeze: AgentClient::hold_quiet), so it did not connect at all. Its
  /// identity is then sent and not waited for (AgentClient::attach_with_identity): `identity`
  /// is the time to write it and start the client, and the child's first request follows it
  /// at once; the agent runs no
  /// request before it, nor any after it if it fails (the sandbox then fails with its error).
  bool agent_carried = false;
  /// Guest memory the VM took ahead of its guest (TemplateOptions::prefault,
  /// SandboxRestoreConfig::prefault) before its vCPUs ran.
  uint64_t prefaulted_bytes = 0;
  /// Of that, what was also mapped into KVM's NPT/EPT tables ahead (Vm::prefault_memory), and
  /// why none was when none was (e.g. a KVM before 6.10, or shadow paging).
  uint64_t premapped_bytes = 0;
  std::string premap_unavailable;
};

}  // namespace forkvm
