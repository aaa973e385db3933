// Vm: assembles one machine (KVM VM, guest memory, irqchip, legacy and virtio devices, boot
// structures, vCPUs) and tracks how it ends. The assembly order is documented in
// Vm::Impl::build(), the teardown order in Vm::Impl::~Impl().
#include "forkvm/vm.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "contract/fatal_reason.hpp"
#include "devices/bus.hpp"
#include "devices/legacy/boot_signal.hpp"
#include "devices/legacy/i8042.hpp"
#include "devices/legacy/serial.hpp"
#include "devices/legacy/stub_ports.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "devices/virtio/block/block_device.hpp"
#include "devices/virtio/block/cow_disk.hpp"
#include "devices/virtio/net/net_device.hpp"
#include "devices/virtio/vsock/vsock_device.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/sandbox_errors.hpp"
#include "memory/guest_memory.hpp"
#include "memory/layout.hpp"
#include "vmm/arch/x86_64/boot_setup.hpp"
#include "vmm/console_tail.hpp"
#include "vmm/irqfd_trigger.hpp"
#include "vmm/kvm/vm_fd.hpp"
#include "vmm/kvm_host.hpp"
#include "vmm/vcpu_boot.hpp"
#include "vmm/vcpu_thread.hpp"
#include "vmm/virtio_mmio_slots.hpp"
#include "vmm/shell_pool.hpp"
#include "vmm/vm_image_impl.hpp"
#include "vmm/vm_impl.hpp"

namespace forkvm {
namespace {

using Clock = std::chrono::steady_clock;

/// An IrqLine on the in-kernel irqchip (KVM_IRQ_LINE on one GSI).
class KvmIrqLine : public IrqLine {
 public:
  KvmIrqLine(const VmFd& vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
  void set_level(bool asserted) noexcept override { vm_.irq_line(gsi_, asserted); }

 private:
  const VmFd& vm_;
  uint32_t gsi_;
};

}  // namespace

void Vm::Impl::load_images() {
  // Kernel, initramfs, command line, zero page, page tables, GDT and MP table go into guest
  // memory before KVM is opened, so a bad image or command line fails with nothing to undo.
  x86::BootConfig boot;
  boot.kernel_path = config.kernel;
  if (!config.initramfs.empty()) boot.initrd_path = config.initramfs;
  boot.cmdline = boot_cmdline;
  boot.vcpu_count = config.vcpus;
  plan = x86::prepare_linux_boot(memory, boot);
}

void Vm::Impl::create_virtio_devices() {
  // Before KVM opens too: a vsock path that cannot be listened on fails with nothing to undo.
  // The same plan produced the virtio_mmio.device= parameters in the command line, so slot i
  // of the command line is virtio_devices[i].
  // Each disk image is opened and locked here too: a missing image or one another VM writes
  // fails with an ImageError naming it; so is the net device's TAP or descriptor.
  virtio_kinds = planned_virtio_devices(config);
  size_t disk = 0;
  for (const VirtioDeviceKind kind : virtio_kinds) {
    switch (kind) {
      case VirtioDeviceKind::kVsock:
        virtio_devices.push_back(
            std::make_shared<VsockDevice>(config.vsock->guest_cid, config.vsock->uds_path));
        break;
      case VirtioDeviceKind::kBlock: {
        // A VM made from an image starts from the image's frozen disks (snapshot_disks.hpp).
        const DiskConfig& d = config.disks[disk];
        std::unique_ptr<BlockBackend> backend;
        if (image) {
          backend = image->impl().disks.at(disk)->open_child();
        } else if (d.copy_on_write) {
          backend = CowDisk::create(DiskImage::open(d.path, true), d.overlay_dir);
        } else {
          backend = std::make_unique<DiskImage>(DiskImage::open(d.path, d.read_only));
        }
        virtio_devices.push_back(std::make_shared<BlockDevice>(std::move(backend), disk_id(d, disk)));
        ++disk;
        break;
      }
      case VirtioDeviceKind::kNet: {
        // This VM's own backend, booted or restored: a TAP opened here (a missing TAP or
        // namespace fails with an Error naming it) or a duplicate of the caller's descriptor.
        const NetConfig& n = *config.net;
        FrameEndpoint backend = n.tap.empty() ? FrameEndpoint::adopt(n.fd)
                                              : FrameEndpoint::open_tap(n.tap, n.netns);
        virtio_devices.push_back(std::make_shared<NetDevice>(std::move(backend), n.mac));
        break;
      }
    }
  }
}

void Vm::Impl::build_machine() {
  build_shell_machine();
  const auto t = Clock::now();
  attach_virtio_devices();
  phases.devices += Clock::now() - t;
}

void Vm::Impl::build_shell_machine() {
  // Order matters (a restored machine is built the same way, then restored instead of
  // configured for boot; a shell from the pool, vmm/shell_pool.hpp, is this much of it):
  // 1. KVM_SET_TSS_ADDR before any vCPU exists (Intel needs it for real-mode emulation).
  // 2. Memory slots before KVM_CREATE_IRQCHIP: after it, each memslot change waits for an SRCU
  //    grace period (measured at ~7 ms per slot on PVM hosts; shared/KVM-LAB.md). A shell's
  //    slots point at reserved address space that its image is mapped over later (the same
  //    host addresses, so the slots never change).
  // 3. KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 before KVM_CREATE_VCPU, so each vCPU gets an
  //    in-kernel LAPIC.
  // 4. Devices after the irqchip: a virtio device's KVM_IRQFD raises one of its pins. The
  //    legacy ones here; the virtio ones (attach_virtio_devices()) may come after the vCPUs.
  // 5. Per-vCPU state last (build() / restore: CPUID before MSRs, KVM filters MSRs by the
  //    CPUID it was given).
  auto t = Clock::now();
  auto lap = [&t](std::chrono::nanoseconds& phase) {
    const auto now = Clock::now();
    phase += now - t;
    t = now;
  };
  if (!kvm) kvm = KvmHost::get(config.kvm_device);  // a shell's comes with its shape
  vm.emplace(kvm->system.create_vm());
  vm->set_tss_addr(layout::kKvmTssStart);
  lap(phases.create_vm);
  // A shell's RAM (reserved, for an image) is logged: KVM records the pages the guest writes,
  // so that a freeze of the VM copies them without scanning its RAM (Vm::freeze). Set here,
  // with the slot: changing a slot's flags later waits for an SRCU grace period. A booted VM's
  // is not: its first freeze copies nothing (the memfd is the image), and dirty logging would
  // keep KVM from mapping its huge pages.
  dirty_logged = memory.backing() == GuestMemory::Backing::kReserved;
  const uint32_t flags = dirty_logged ? KVM_MEM_LOG_DIRTY_PAGES : 0;
  uint32_t slot = 0;
  for (const auto& r : memory.regions()) vm->set_user_memory_region(slot++, r.gpa, r.size, r.host, flags);
  lap(phases.memory);
  vm->create_irqchip();
  vm->create_pit2();
  lap(phases.create_vm);
  add_legacy_devices();
  lap(phases.devices);
}

void Vm::Impl::create_vcpu_threads() {
  const auto t0 = std::chrono::steady_clock::now();
  for (uint32_t i = 0; i < config.vcpus; ++i) {
    VcpuFd fd = vm->create_vcpu(i);
    if (auto stats = fd.open_stats()) vcpu_stats.push_back(std::move(*stats));
    vcpus.push_back(std::make_unique<VcpuThread>(
        i, std::move(fd), pio, mmio,
        [this](uint32_t index, ExitAction action, const std::string& detail) {
          on_vcpu_stop(index, action, detail);
        }));
  }
  phases.vcpus += std::chrono::steady_clock::now() - t0;
}

void Vm::Impl::build() {
  build_machine();
  create_vcpu_threads();
  for (uint32_t i = 0; i < config.vcpus; ++i) {
    configure_vcpu_for_boot(vcpus[i]->vcpu(), i, config.vcpus, kvm->supported_cpuid,
                            kvm->tsc_deadline, *plan);
  }
}

void Vm::Impl::add_legacy_devices() {
  // On the vCPU thread: the tail keeps the last bytes for errors; the embedder's callback runs
  // on the relay's thread (start_console()), so a slow one never stalls the guest.
  auto sink = [this](std::span<const uint8_t> bytes) {
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    tail.append(text);
    console.push(text);
  };
  serial = std::make_shared<Serial>(std::make_shared<KvmIrqLine>(*vm, layout::kCom1Irq), sink);
  pio.insert(serial, layout::kCom1Port, 8);
  i8042 = std::make_shared<I8042>(std::make_shared<KvmIrqLine>(*vm, layout::kI8042Irq),
                                  [this] { on_reset(); });
  pio.insert(i8042, layout::kI8042Port, 5);
  boot_signal = std::make_shared<BootSignalDevice>(
      [this](BootSignal code, uint32_t arg, Clock::time_point when) {
        on_boot_signal(code, arg, when);
      });
  pio.insert(boot_signal, layout::kBootSignalPort, 4);
  insert_legacy_stub_ports(pio);
}

void Vm::Impl::attach_virtio_devices() {
  for (auto& device : virtio_devices) attach_virtio(device);
}

void Vm::Impl::attach_virtio(std::shared_ptr<VirtioDevice> device) {
  // The next slot and GSI. The command line (already in guest memory) declares exactly the
  // planned devices, so attaching more would give the guest a device it never probes.
  if (virtio.size() >= virtio_devices.size()) {
    throw Error("attach_virtio: more virtio devices than the command line declares (" +
                std::to_string(virtio_devices.size()) + ")");
  }
  const VirtioMmioSlot slot = virtio_mmio_slot(virtio.size());
  // Needs the irqchip (created before the devices are attached): the irqfd raises an IOAPIC/PIC pin.
  // A VM made from an image (Vm::prepare) holds the line until launch() restored the irqchip
  // (irqfd_trigger.hpp says why); a booted VM's driver cannot run before its vCPUs do.
  auto trigger = std::make_shared<IrqfdTrigger>(image != nullptr);
  vm->register_irqfd(trigger->fd(), slot.gsi);
  irqs.push_back(trigger);
  auto transport = std::make_shared<VirtioMmioTransport>(std::move(device), memory, trigger);
  // QueueNotify writes of the queue index are served inside KVM; other values and widths
  // still exit and reach the transport, which signals the same eventfd or ignores them.
  for (size_t q = 0; q < transport->queue_count(); ++q) {
    vm->register_ioeventfd(slot.base + virtio_mmio::kQueueNotify, 4, q, transport->queue_event(q));
  }
  // A device that cannot go on (an exception on its worker: out of memory, a bug) stops this VM
  // with its reason; a worker thread calls this, which only records and kicks (finish()).
  transport->set_failure_handler(
      [this](const std::string& reason) { finish_noexcept(StopReason::kDeviceError, [&] { return reason; }); });
  mmio.insert(transport, slot.base, slot.size);
  virtio.push_back(std::move(transport));
}

void Vm::Impl::reset_virtio_devices() noexcept {
  for (auto& t : virtio) t->reset_device();
}

void Vm::Impl::start_console() {
  // config.console is final here: a shell's config gets its console when the shell is given an
  // image (Vm::prepare), before launch() gets here.
  if (config.console) console.start(config.console);
}

Vm::Impl::~Impl() {
  // Teardown order: the vCPUs stop first, so no register write can (re)activate a device;
  // then every device is reset, which joins its worker, while guest memory is still mapped.
  // Only then do the members go, in reverse declaration order: buses (transports, devices),
  // the VM fd, KVM, and last the guest memory.
  for (auto& v : vcpus) v->stop();
  console.stop();
  reset_virtio_devices();
}

void Vm::Impl::on_boot_signal(BootSignal code, uint32_t arg, Clock::time_point when) {
  std::lock_guard lock(mu);
  switch (code) {
    case BootSignal::kAgentReady:
      if (!ready) ready = when;
      break;
    case BootSignal::kPowerOff:
      poweroff_announced = true;
      poweroff_status = arg;
      break;
    case BootSignal::kFatal:
      agent_fatal = arg;
      break;
  }
  cv.notify_all();
}

void Vm::Impl::on_reset() {
  // Runs on the vCPU thread that wrote 0xFE to the i8042. Only classify and request stops.
  VmResult r;
  {
    std::lock_guard lock(mu);
    if (poweroff_announced) {
      r = {StopReason::kPowerOff, poweroff_status, "the agent powered the VM off"};
    } else if (agent_fatal) {
      r = {StopReason::kAgentFatal, *agent_fatal,
           std::string("the agent failed (") + fatal_reason_name(*agent_fatal) + ", code " +
               std::to_string(*agent_fatal) + ") and reset the VM"};
    } else {
      r = {StopReason::kGuestReset, 0,
           "the guest reset the machine without the agent announcing a power-off "
           "(kernel panic or reboot)"};
    }
  }
  finish(std::move(r));
}

void Vm::Impl::on_vcpu_stop(uint32_t index, ExitAction action, const std::string& detail) {
  StopReason reason = StopReason::kVcpuError;
  switch (action) {
    case ExitAction::kGuestReset: reason = StopReason::kTripleFault; break;
    case ExitAction::kGuestHalt: reason = StopReason::kGuestReset; break;
    case ExitAction::kDeviceError: reason = StopReason::kDeviceError; break;
    default: break;
  }
  finish_noexcept(reason, [&] { return "vCPU " + std::to_string(index) + ": " + detail; });
}

void Vm::Impl::finish(VmResult r) {
  {
    std::lock_guard lock(mu);
    if (result) return;
    result = std::move(r);
    cv.notify_all();
  }
  for (auto& v : vcpus) v->request_stop();
}

Vm::Vm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Vm::~Vm() {
  if (impl_) stop();
}

std::unique_ptr<Vm> Vm::create(const VmConfig& config) {
  validate(config);
  const auto t0 = Clock::now();
  // RAM is a memfd mapped shared (unless anonymous RAM was asked for): the first freeze()
  // (fork) of this VM makes the memfd itself the children's copy-on-write base, without
  // copying a page.
  const uint64_t ram_bytes = config.memory_mib * layout::kMiB;
  auto impl = std::make_unique<Impl>(
      config, config.ram_backing == RamBacking::kAnonymous
                  ? GuestMemory::create_anonymous(ram_bytes)
                  : GuestMemory::create_memfd(ram_bytes,
                                              config.ram_backing == RamBacking::kMemfdHugePages));
  impl->boot_cmdline = effective_cmdline(config);
  impl->load_images();
  impl->create_virtio_devices();
  impl->build();
  impl->build_time = Clock::now() - t0;
  // A machine with a vsock device is a sandbox, which may well be forked or snapshotted: keep
  // shells of its shape ready so that its first child does not build one inline.
  if (config.vsock) {
    ShellPool::instance().want({impl->kvm, config.kvm_device, config.vcpus, config.memory_mib});
  }
  return std::unique_ptr<Vm>(new Vm(std::move(impl)));
}

void Vm::start() {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->started) throw Error("Vm::start called twice");
    if (impl_->image) throw InvalidStateError("Vm::start: a prepared VM is started by launch()");
    impl_->started = Clock::now();
  }
  impl_->start_console();
  for (auto& v : impl_->vcpus) v->start(true);
}

bool Vm::wait_ready(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait_for(lock, timeout, [&] { return impl_->ready || impl_->result; });
  if (impl_->ready) return true;
  if (impl_->result) {
    const VmResult r = *impl_->result;
    lock.unlock();
    throw GuestError("the VM stopped before the agent was ready: " +
                         std::string(to_string(r.reason)) + ": " + r.detail,
                     impl_->tail.text());
  }
  return false;
}

std::optional<VmResult> Vm::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  // A zero timeout only looks. wait_for() with a deadline already passed still goes into the
  // kernel (a futex wait on a deadline that has passed): measured 150-900 us a call in kvm-lab,
  // on a pooled fork's path (the pooled VM's check) and in every agent connect attempt.
  if (timeout <= std::chrono::milliseconds(0)) return impl_->result;
  if (!impl_->cv.wait_for(lock, timeout, [&] { return impl_->result.has_value(); })) {
    return std::nullopt;
  }
  return impl_->result;
}

void Vm::Impl::pause_vcpus(const char* what) {
  // One deadline for all: each vCPU waits for what is left of it.
  const auto deadline = Clock::now() + VcpuThread::kPauseTimeout;
  for (size_t i = 0; i < vcpus.size(); ++i) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (vcpus[i]->pause(std::max(left, std::chrono::milliseconds(0)))) continue;
    // The stuck vCPU parks when its device call returns; resume() withdraws that too.
    if (!user_paused) {
      for (auto& v : vcpus) v->resume();
    }
    throw TimeoutError(std::string(what) + ": vCPU " + std::to_string(i) + " did not stop within " +
                       std::to_string(VcpuThread::kPauseTimeout.count()) +
                       " ms: its thread is stuck in a device call (the VM keeps running; stop() "
                       "ends it once the call returns)");
  }
}

void Vm::pause() {
  std::lock_guard lifecycle(impl_->lifecycle_mu);
  if (!impl_->was_started()) throw InvalidStateError("Vm::pause: the VM was never started");
  impl_->pause_vcpus("Vm::pause");
  impl_->user_paused = true;
}

void Vm::resume() {
  std::lock_guard lifecycle(impl_->lifecycle_mu);
  // A prepared VM's vCPU threads wait parked for launch(), which restores the live state first.
  if (!impl_->was_started()) return;
  impl_->user_paused = false;
  for (auto& v : impl_->vcpus) v->resume();
}

void Vm::request_stop() {
  std::lock_guard lifecycle(impl_->lifecycle_mu);
  impl_->finish({StopReason::kHostStop, 0, "stopped by the host"});
  impl_->console.mute();  // waits for a callback in progress, unless this runs inside it
}

VmResult Vm::stop() {
  std::lock_guard lifecycle(impl_->lifecycle_mu);
  impl_->finish({StopReason::kHostStop, 0, "stopped by the host"});
  for (auto& v : impl_->vcpus) v->stop();
  impl_->console.stop();  // what the vCPUs wrote reaches the callback before stop() returns
  // A stopped VM never runs again: stop the device workers now (host vsock sockets see EOF)
  // rather than when the Vm is destroyed.
  impl_->reset_virtio_devices();
  std::lock_guard lock(impl_->mu);
  return *impl_->result;
}

std::chrono::nanoseconds Vm::build_time() const { return impl_->build_time; }

std::optional<std::chrono::nanoseconds> Vm::start_to_ready() const {
  std::lock_guard lock(impl_->mu);
  if (!impl_->ready || !impl_->started) return std::nullopt;
  return *impl_->ready - *impl_->started;
}

std::string Vm::console_tail() const { return impl_->tail.text(); }

uint64_t Vm::console_bytes_dropped() const { return impl_->console.dropped(); }

size_t Vm::send_console_input(std::string_view bytes) {
  return impl_->serial->enqueue_input(
      std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

uint64_t Vm::unmapped_accesses() const {
  return impl_->pio.unmapped_accesses() + impl_->mmio.unmapped_accesses();
}

}  // namespace forkvm
