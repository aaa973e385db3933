// Vm::Impl: the machine behind forkvm::Vm, shared by the boot path (vm.cpp) and the snapshot
// and restore path (vm_snapshot.cpp). Private to the library.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "devices/bus.hpp"
#include "devices/legacy/boot_signal.hpp"
#include "devices/legacy/i8042.hpp"
#include "devices/legacy/serial.hpp"
#include "devices/virtio/block/disk_image.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "forkvm/vm.hpp"
#include "memory/guest_memory.hpp"
#include "vmm/arch/x86_64/boot_setup.hpp"
#include "vmm/console_relay.hpp"
#include "vmm/console_tail.hpp"
#include "vmm/irqfd_trigger.hpp"
#include "vmm/kvm/kvm_stats.hpp"
#include "vmm/kvm/vm_fd.hpp"
#include "vmm/kvm_host.hpp"
#include "snapshot/state_file.hpp"
#include "vmm/machine_components.hpp"
#include "vmm/vcpu_thread.hpp"
#include "vmm/virtio_mmio_slots.hpp"

namespace forkvm {

/// The vsock checks of validate(), for a restore (which loads no images): CID range and
/// socket path length. Throws ConfigError.
void validate_vsock(const VsockConfig& vsock);

/// RAM this host could give a guest: physical memory, bounded by RLIMIT_AS. validate() refuses
/// a VmConfig::memory_mib above it; VmImage::open refuses a snapshot's memory_mib above it, before
/// anything is mapped.
uint64_t host_memory_limit();

/// Throws "<what>memory of N MiB is more than this host can give (M MiB)" when `memory_mib` is
/// above host_memory_limit(): SnapshotError with `snapshot`, ConfigError otherwise.
void check_fits_host(uint64_t memory_mib, const std::string& what, bool snapshot);

/// The net checks of validate(), for a restore too: exactly one of tap and fd, netns only with
/// a TAP, a TAP name that fits IFNAMSIZ, a unicast MAC. Throws ConfigError.
void validate_net(const NetConfig& net);

/// The serial of disk `index`: its id, or "disk<index>" when it has none.
std::string disk_id(const DiskConfig& disk, size_t index);

struct Vm::Impl {
  using Clock = std::chrono::steady_clock;

  /// A machine over `mem`: anonymous RAM for a boot, the snapshot's memory file mapped
  /// copy-on-write for a restore.
  Impl(const VmConfig& c, GuestMemory mem) : config(c), memory(std::move(mem)) {}
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Boot path (vm.cpp).
  void load_images();
  void create_virtio_devices();
  /// KVM_CREATE_VM, TSS, memory slots, irqchip, PIT and the devices: what a booted and a
  /// restored machine share, in the order documented in vm.cpp.
  void build_machine();
  /// build_machine() without the virtio devices: the part that needs no image and no
  /// per-VM configuration, which a shell (vmm/shell_pool.hpp) holds ready.
  void build_shell_machine();
  /// build_machine(), then vCPUs configured for a Linux boot.
  void build();
  /// One VcpuThread (not started) per vCPU; the caller configures or restores the vCPUs.
  void create_vcpu_threads();
  /// Serial, i8042, boot signal and the stub ports, on the port bus.
  void add_legacy_devices();
  /// Attaches virtio_devices in slot order (needs the irqchip).
  void attach_virtio_devices();
  void attach_virtio(std::shared_ptr<VirtioDevice> device);
  void reset_virtio_devices() noexcept;
  void on_boot_signal(BootSignal code, uint32_t arg, Clock::time_point when);
  void on_reset();
  void on_vcpu_stop(uint32_t index, ExitAction action, const std::string& detail);
  /// Starts the console relay when the config has a callback (before the vCPUs start).
  void start_console();
  /// Records how the VM ended (first caller wins) and asks every vCPU to stop. Does not throw
  /// when result.detail is empty (nothing to allocate).
  void finish(VmResult result);
  /// finish() with `detail` built by `describe`; when building it throws (out of memory), the
  /// VM still ends, with `reason` and an empty detail, so a stop is never lost.
  template <typename Describe>
  void finish_noexcept(StopReason reason, Describe&& describe) noexcept {
    try {
      finish({reason, 0, describe()});
    } catch (...) {
      finish({reason, 0, {}});
    }
  }

  // Snapshot, freeze and restore path (vm_snapshot.cpp).
  /// Pauses the vCPUs, quiesces the virtio transports, captures the machine and every device,
  /// calls `with_paused` (to write or freeze guest memory) while still paused, then resumes the
  /// devices and the vCPUs, also when something threw.
  /// The vsock connections to a port in `options.carry_vsock` are carried.
  MachineComponents capture_components(
      const std::function<void(const MachineComponents&)>& with_paused,
      const CaptureOptions& options = {});
  /// Restores the virtio devices of a machine built by build_machine() + create_vcpu_threads()
  /// (vCPUs not started) from `components`: each slot's device, then its transport, which
  /// activates the device (workers started, queues kicked) with its interrupt line still held
  /// (irqfd_trigger.hpp). Vm::prepare(), so a pooled VM's workers start off every fork's path.
  /// Sets phases.activate.
  void restore_virtio(const MachineComponents& components);
  /// The serial port's and the i8042's state, each re-driving its IRQ line: in Vm::prepare()
  /// when MachineState::irqchip_ahead(), else in restore_live().
  void restore_legacy_lines(const MachineComponents& components);
  /// The rest, in Vm::launch() right before the vCPUs start: the live half of the KVM state
  /// (the TSCs, PIT and kvmclock; also LAPICs, events and IOAPIC when a LAPIC timer counts on
  /// host time), then the legacy devices if prepare() did not, the boot signal; then the virtio
  /// interrupt lines are released (devices/SNAPSHOT.md "Restore order").
  void restore_live(const MachineComponents& components);
  /// The pages the guest wrote since the RAM was mapped or last frozen, one bitmap per memory
  /// slot, from KVM's dirty log (which reading clears); none when the slots are not logged
  /// (freeze then scans pagemap). With the vCPUs paused.
  std::optional<PageBitmaps> guest_written();
  /// Throws SnapshotError ("<what>: ...") when the VM has disks (not yet snapshotted).
  /// The machine as a snapshot records it; with `digests`, each disk's SHA-256 too (a snapshot
  /// directory needs them; a frozen image holds the files open instead).
  snapshot::MachineConfig machine_config(bool digests) const;
  /// Every disk frozen for an image made from this VM (BlockDevice::freeze_disk()); only
  /// while the devices are quiesced.
  std::vector<std::shared_ptr<const FrozenDisk>> freeze_disks();
  /// Throws SnapshotError (before anything is paused) for a persistent read-write disk, and
  /// for a copy-on-write one unless `allow_copy_on_write`.
  void refuse_disks(const char* what, bool allow_copy_on_write) const;
  /// Pauses every vCPU within one VcpuThread::kPauseTimeout. When one does not park in time,
  /// lets the others run again (unless the caller paused the VM) and throws TimeoutError
  /// ("<what>: vCPU <i> did not stop ...").
  void pause_vcpus(const char* what);
  /// Throws InvalidStateError ("<what>: ...") unless the VM was started and has not stopped.
  void require_running(const char* what);

  VmConfig config;
  /// Secrets are in guest memory (Vm::set_secrets_in_memory, or inherited from the image):
  /// recorded by snapshot() and freeze() as MachineConfig::secrets.
  std::atomic<bool> secrets_in_memory{false};
  /// The command line the guest booted with (effective_cmdline(config) for a boot, the
  /// snapshot's for a restore; the guest's copy is in its memory either way).
  std::string boot_cmdline;
  // Declared (so destroyed in reverse) memory -> KVM -> VM: the VM fd is closed before the
  // memory its slots point at is unmapped.
  GuestMemory memory;
  std::optional<x86::BootPlan> plan;
  /// The process-wide KVM device (opened once; its CPUID and MSR lists read once).
  std::shared_ptr<const KvmHost> kvm;
  std::optional<VmFd> vm;
  /// The memory slots log the guest's writes (KVM_MEM_LOG_DIRTY_PAGES; build_shell_machine()),
  /// and guest memory logs the host's (GuestMemory::start_write_log(), Vm::prepare()). Cleared
  /// when KVM_GET_DIRTY_LOG fails: the VM's freezes then scan pagemap.
  bool dirty_logged = false;
  Bus pio{"pio", 0xff};
  Bus mmio{"mmio", 0};
  ConsoleTail tail{16 * 1024};
  /// Hands the console output to config.console on its own thread (started with the vCPUs when
  /// there is a callback); declared before `vcpus`, which push into it, so it outlives them.
  ConsoleRelay console{kConsoleQueueBytes};
  /// The most console output that waits for a slow config.console callback.
  static constexpr size_t kConsoleQueueBytes = 256 * 1024;
  std::shared_ptr<Serial> serial;
  std::shared_ptr<I8042> i8042;
  std::shared_ptr<BootSignalDevice> boot_signal;
  /// planned_virtio_devices(config): the kind of virtio_devices[i].
  std::vector<VirtioDeviceKind> virtio_kinds;
  /// Created from planned_virtio_devices(config) before KVM opens, attached in slot order.
  std::vector<std::shared_ptr<VirtioDevice>> virtio_devices;
  /// The attached transports (also on the mmio bus), in slot order.
  std::vector<std::shared_ptr<VirtioMmioTransport>> virtio;
  /// Their interrupt lines, in slot order (held in a VM made from an image until launch()).
  std::vector<std::shared_ptr<IrqfdTrigger>> irqs;
  std::vector<std::unique_ptr<VcpuThread>> vcpus;
  /// The vCPUs' statistics files, opened as each vCPU is created, before it can run (the
  /// ioctl waits for KVM_RUN); empty on a kernel without them. Read by Vm::kvm_counters().
  std::vector<KvmStatsFd> vcpu_stats;

  /// Serialises snapshot() against stop(): a snapshot pauses and resumes the vCPUs, which must
  /// not race with the teardown that joins them.
  std::mutex lifecycle_mu;
  std::mutex mu;
  std::condition_variable cv;
  std::chrono::nanoseconds build_time{};
  /// Phases of prepare() and launch() (restore and fork).
  VmBuildPhases phases;
  /// The image a prepared VM restores from in launch(); null for a booted VM.
  std::shared_ptr<const VmImage> image;
  /// The last image freeze() made of this VM, not kept alive by it: the next freeze's image
  /// starts out knowing what this one learned (VmImage::Impl::inherit_first_touches).
  /// Guarded by lifecycle_mu.
  std::weak_ptr<const VmImage> last_frozen;
  /// launch() ran (or is running).
  bool launched = false;
  std::optional<Clock::time_point> started;
  /// Whether start() or launch() ran (reads `started` under mu).
  bool was_started() {
    std::lock_guard lock(mu);
    return started.has_value();
  }
  std::optional<Clock::time_point> ready;
  std::optional<VmResult> result;
  bool poweroff_announced = false;
  uint32_t poweroff_status = 0;
  std::optional<uint32_t> agent_fatal;
  /// Vm::pause() was called and Vm::resume() not since: a snapshot leaves the vCPUs paused.
  bool user_paused = false;
};

}  // namespace forkvm
