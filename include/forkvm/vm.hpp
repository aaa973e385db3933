// forkvm::Vm: boots a Linux guest on /dev/kvm and runs it on one thread per vCPU.
// This header is free of KVM types; everything behind it lives in vmm/.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace forkvm {

/// A virtio-vsock device (virtio 1.2 §5.10) whose host side is Unix sockets, in the
/// Firecracker style: a host program connects to `uds_path` and writes "CONNECT <port>\n" to
/// reach a guest listener; a guest connection to host port P is connected to the Unix socket
/// "<uds_path>_<P>", where a host program must be listening.
struct VsockConfig {
  /// The guest's context id: at least 3 (0-2 are reserved, virtio 1.2 §5.10.4) and below
  /// 2^32 - 1 (VMADDR_CID_ANY).
  uint64_t guest_cid = 3;
  /// The host Unix socket path; non-empty and shorter than sockaddr_un::sun_path (107 bytes).
  std::string uds_path;
};

/// What to boot and how big the machine is.
struct VmConfig {
  /// Kernel image: a bzImage (boot protocol >= 2.12, 64-bit) or an ELF vmlinux.
  std::string kernel;
  /// Optional initramfs (any format the kernel accepts, usually a gzip'd newc cpio).
  std::string initramfs;
  /// Number of vCPUs, 1..64.
  uint32_t vcpus = 1;
  /// Guest RAM in MiB, at least 64.
  uint64_t memory_mib = 256;
  /// Kernel command line. Empty means default_cmdline(); see extra_cmdline to add to it.
  std::string cmdline;
  /// Appended (after a space) to the command line.
  std::string extra_cmdline;
  /// Receives the serial console output as it arrives (from a vCPU thread). Optional: the last
  /// part of the console is always kept for error messages (Vm::console_tail()).
  std::function<void(std::string_view)> console;
  /// The KVM device to open.
  std::string kvm_device = "/dev/kvm";
  /// A vsock device for host <-> guest streams; none when unset.
  std::optional<VsockConfig> vsock;
};

/// The kernel command line used when VmConfig::cmdline is empty.
std::string default_cmdline();

/// The command line a VM built from `config` boots with: one `virtio_mmio.device=` parameter
/// per virtio device (e.g. vsock), then `cmdline` (or default_cmdline() when empty), then a
/// space and `extra_cmdline` when that is set. The device parameters come first so that a
/// "--" in the caller's part cannot hand them to init instead of the kernel.
std::string effective_cmdline(const VmConfig& config);

/// Checks a configuration without touching KVM: sizes and counts in range, files readable,
/// the vsock section (if any) well-formed. Throws ConfigError or ImageError. Vm::create()
/// calls it first.
void validate(const VmConfig& config);

/// How Vm::restore() builds the new machine. The machine itself (vCPUs, memory size, devices,
/// the guest's command line) comes from the snapshot; only the host-side parts are chosen here.
struct RestoreOptions {
  /// The vsock device of the restored VM: required when the snapshot's machine had one (and
  /// refused when it had none). It may use another CID and must use another socket path than
  /// the VM the snapshot was taken from, if that one still runs; the guest learns the CID from
  /// the TRANSPORT_RESET that every snapshot posts (devices/SNAPSHOT.md).
  std::optional<VsockConfig> vsock;
  /// Receives the serial console output (as VmConfig::console).
  std::function<void(std::string_view)> console;
  /// The KVM device to open.
  std::string kvm_device = "/dev/kvm";
  /// Re-hash the memory file against its digest before mapping it (the state digest is always
  /// checked). Turn off only for a snapshot already verified in this process.
  bool verify_memory = true;
};

/// Why a VM stopped.
enum class StopReason {
  kPowerOff,    ///< the guest agent announced a power-off and reset the machine
  kGuestReset,  ///< the guest reset without the agent announcing it (kernel panic, reboot)
  kAgentFatal,  ///< the agent reported a fatal error and reset the machine
  kTripleFault, ///< the CPU shut down (triple fault)
  kVcpuError,   ///< KVM could not run a vCPU (entry failure, internal error, ...)
  kHostStop,    ///< stop() was called
};

/// A short name for a StopReason ("poweroff", "guest-reset", ...).
std::string_view to_string(StopReason reason);

/// How a VM ended.
struct VmResult {
  StopReason reason = StopReason::kHostStop;
  /// The status the agent passed with its power-off announcement (kPowerOff only).
  uint32_t exit_status = 0;
  /// A human-readable account (the exit that stopped a vCPU, the agent's reason code, ...).
  std::string detail;
};

/// One microVM. Create it, start() it, then wait_ready() and/or wait(). Destroying it stops
/// the vCPUs and releases every resource.
class Vm {
 public:
  /// Validates the config, opens KVM and builds the machine (memory, irqchip, devices, boot
  /// structures, vCPUs), without running it. Throws ConfigError, ImageError, KvmError, or
  /// another forkvm::Error when the vsock device cannot listen on VsockConfig::uds_path.
  static std::unique_ptr<Vm> create(const VmConfig& config);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  /// Starts every vCPU. Call once.
  void start();
  /// Waits until the guest agent signals ready. Returns true when it did, false when `timeout`
  /// passed first. Throws GuestError (with the console tail) if the VM stopped before ready.
  bool wait_ready(std::chrono::milliseconds timeout);
  /// Waits until the VM stops by itself; nullopt when `timeout` passed first.
  std::optional<VmResult> wait(std::chrono::milliseconds timeout);
  /// Stops every vCPU at its next exit (kicking it out of KVM_RUN) and returns once all are
  /// parked outside the guest. Devices keep their state; resume() continues. No-op once the VM
  /// has stopped.
  void pause();
  /// Lets paused vCPUs run again.
  void resume();
  /// Stops the VM (idempotent) and returns how it ended. Virtio devices are reset too (their
  /// workers stop; vsock host sockets see EOF): a stopped VM does not run again.
  VmResult stop();

  /// Writes a snapshot of the running VM to the new directory `dir` (snapshot/README.md: memory
  /// file, state.json and its digest; `dir` must not exist and appears complete or not at all).
  /// The vCPUs are paused, the virtio devices quiesced (vsock: host connections are closed and
  /// the guest gets a TRANSPORT_RESET), the machine and every device captured and guest memory
  /// written; then the devices and vCPUs resume and this VM keeps running (a VM paused with
  /// pause() stays paused). Throws InvalidStateError (sandbox_errors.hpp) when the VM was not
  /// started or has stopped, SnapshotError when the state cannot be captured or written, and
  /// KvmError when KVM refuses to read the state.
  void snapshot(const std::string& dir);
  /// Builds a VM from the snapshot in `dir` and starts its vCPUs: the state digest (and, with
  /// RestoreOptions::verify_memory, the memory digest) is verified, guest memory is the memory
  /// file mapped copy-on-write (nothing is copied, and nothing this VM writes reaches the file),
  /// and the machine is restored in the order of vmm/state and devices/SNAPSHOT.md. The new VM
  /// is already ready when the snapshot's was (wait_ready() returns true at once). Throws
  /// SnapshotError for a missing, corrupt or inconsistent snapshot or a host CPU that lacks
  /// features the snapshot uses, ConfigError for RestoreOptions that do not fit the snapshot,
  /// KvmError when KVM refuses the state.
  static std::unique_ptr<Vm> restore(const std::string& dir, const RestoreOptions& options);

  /// Time spent in create() (KVM setup and loading the images) or restore().
  std::chrono::nanoseconds build_time() const;
  /// Time from start() to the agent's ready signal, once it came.
  std::optional<std::chrono::nanoseconds> start_to_ready() const;
  /// The last few KiB of console output.
  std::string console_tail() const;
  /// Queues bytes for the guest's serial console (the UART's 64-byte receive FIFO). Returns
  /// how many were taken; 0 while the FIFO is full, so callers retry the rest later. Safe from
  /// any thread.
  size_t send_console_input(std::string_view bytes);
  /// Port and MMIO accesses that no device claimed.
  uint64_t unmapped_accesses() const;

 private:
  struct Impl;
  explicit Vm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace forkvm
