// Vm::snapshot, Vm::freeze, Vm::prepare/launch/restore and VmImage: a running machine captured
// into MachineComponents plus its memory (written to disk, or frozen in memory for forks), and
// a machine rebuilt from an image.
//
// Capture order (devices/SNAPSHOT.md "Save order"): pause the vCPUs; quiesce every transport
// (the devices stop with nothing in flight; vsock keeps its host connections); vCPU state then
// VM state; serial, i8042, boot signal, then each slot's transport and
// device; guest memory (written or frozen); resume the transports and the vCPUs.
// Restore order (devices/SNAPSHOT.md "Restore order", on a machine built as at boot: memory
// slots, irqchip, PIT, devices at the same slots, vCPUs created). In prepare: CPU features
// checked; the vCPU and VM state that does not move with time (with the LAPICs, events and
// IOAPIC, and then serial and i8042, when no LAPIC timer counts on host time:
// MachineState::irqchip_ahead()); per slot the device's state then the transport's (which
// re-activates and re-kicks; the vsock device takes over the carried connections and queues
// RSTs for the stale ones there, or for an old snapshot posts TRANSPORT_RESET), with the
// interrupt lines held (vmm/irqfd_trigger.hpp). In launch: the live vCPU and VM state (TSCs,
// PIT, kvmclock, and the rest of what prepare did not take); boot signal; the interrupt lines
// released, now that the irqchip is the snapshot's; then the vCPU threads, made parked at the end
// of prepare, are woken.
//
// The path of a fork: Sandbox::fork (sandbox/sandbox_fork.cpp) -> Vm::freeze (here:
// capture_components + GuestMemory::freeze, memory/guest_memory_image.cpp) -> Template::fork
// (sandbox/template.cpp) -> Vm::prepare (here: a shell from vmm/shell_pool.cpp, or one built
// inline; the image mapped over its reserved RAM; the virtio devices) + Vm::launch (here) ->
// agent connect + identity.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "forkvm/errors.hpp"
#include "memory/layout.hpp"
#include "snapshot/snapshot.hpp"
#include "vmm/opened_images.hpp"
#include "devices/virtio/block/cow_disk.hpp"
#include "devices/virtio/net/net_device.hpp"
#include "vmm/kvm/kvm_abi.hpp"
#include "vmm/shell_pool.hpp"
#include "vmm/snapshot_disks.hpp"
#include "vmm/state/cpu_features.hpp"
#include "vmm/vm_image_impl.hpp"
#include "vmm/vm_impl.hpp"

namespace forkvm {
namespace {

using Clock = std::chrono::steady_clock;

/// The vsock device behind a slot of kind kVsock.
VsockDevice& vsock_device(const std::shared_ptr<VirtioDevice>& device) {
  return static_cast<VsockDevice&>(*device);
}

std::vector<const VcpuFd*> vcpu_fds(const std::vector<std::unique_ptr<VcpuThread>>& vcpus) {
  std::vector<const VcpuFd*> fds;
  fds.reserve(vcpus.size());
  for (const auto& v : vcpus) fds.push_back(&v->vcpu());
  return fds;
}

/// The block device behind a slot of kind kBlock.
BlockDevice& block_device(const std::shared_ptr<VirtioDevice>& device) {
  return static_cast<BlockDevice&>(*device);
}

/// The net device behind a slot of kind kNet.
NetDevice& net_device(const std::shared_ptr<VirtioDevice>& device) {
  return static_cast<NetDevice&>(*device);
}

/// The disks of a machine as a VmConfig lists them (the images are opened elsewhere).
std::vector<DiskConfig> disk_configs(const snapshot::MachineConfig& m) {
  std::vector<DiskConfig> disks;
  for (const auto& d : m.disks) {
    DiskConfig c;
    c.path = d.path;
    c.read_only = !d.copy_on_write;
    c.id = d.id;
    c.copy_on_write = d.copy_on_write;
    disks.push_back(std::move(c));
  }
  return disks;
}

/// The virtio devices a machine described by `m` has, in slot order.
std::vector<VirtioDeviceKind> kinds_of(const snapshot::MachineConfig& m) {
  VmConfig c;
  if (m.guest_cid) c.vsock = VsockConfig{*m.guest_cid, "x"};
  c.disks = disk_configs(m);
  if (m.net) c.net = NetConfig{};  // only its presence matters here
  return planned_virtio_devices(c);
}

}  // namespace


VmImage::VmImage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VmImage::~VmImage() = default;
uint32_t VmImage::vcpus() const noexcept { return impl_->machine.vcpus; }
uint64_t VmImage::memory_mib() const noexcept { return impl_->machine.memory_mib; }
bool VmImage::has_vsock() const noexcept { return impl_->machine.guest_cid.has_value(); }
bool VmImage::has_net() const noexcept { return impl_->machine.net; }
bool VmImage::has_secrets() const noexcept { return impl_->machine.secrets; }
size_t VmImage::memory_layers() const noexcept { return impl_->memory->layers().size(); }
uint64_t VmImage::overlay_bytes() const noexcept { return impl_->memory->overlay_bytes(); }
bool VmImage::written_pages_logged() const noexcept { return impl_->written_pages_logged; }

std::shared_ptr<const VmImage> VmImage::open(const std::string& dir, bool verify_memory,
                                             bool verify_disks) {
  // A snapshot opened before in this process and unchanged since is reused as it is: its
  // checks stand (vmm/opened_images.hpp says why an equal stamp means equal bytes).
  const std::optional<DirStamp> before = stamp_directory(dir);
  if (before) {
    if (auto image = OpenedImages::instance().find(*before, verify_memory, verify_disks)) {
      return image;
    }
  }
  struct timespec read_began {};  // before the memory file is read (vmm/touches_cache.hpp)
  ::clock_gettime(CLOCK_REALTIME, &read_began);
  auto image = open_uncached(dir, verify_memory, verify_disks);
  std::vector<std::string> disk_paths;
  for (const auto& d : image->impl().machine.disks) disk_paths.push_back(d.path);
  // Remembered only when nothing changed while it was read (the stamps before and after agree)
  // and its file times are old enough to tell a later write (opened_images.hpp).
  const std::optional<DirStamp> after = stamp_directory(dir);
  const bool unchanged = before && after && *before == *after;
  // What earlier processes learned from VMs of this memory file, when the file read is the
  // one stamped (vmm/touches_cache.hpp).
  if (unchanged) image->impl().recall_first_touches(*after, read_began);
  auto disks = stamp_files(disk_paths);
  if (unchanged && disks && OpenedImages::instance().settled(*after, *disks)) {
    OpenedImages::instance().remember(*after, std::move(*disks), verify_memory, verify_disks,
                                      image);
  }
  return image;
}

void VmImage::keep_opened(size_t n) { OpenedImages::instance().set_keep(n); }

std::shared_ptr<const VmImage> VmImage::open_uncached(const std::string& dir, bool verify_memory,
                                                      bool verify_disks) {
  snapshot::OpenOptions open_options;
  open_options.verify_memory = verify_memory;
  snapshot::SnapshotFiles files = snapshot::open_snapshot(dir, open_options);
  // The boot's check of VmConfig::memory_mib, before anything is mapped: a snapshot from a
  // bigger host (or a forged one) fails here with a SnapshotError, not as an mmap or KVM error.
  check_fits_host(files.state.machine.memory_mib, dir + ": the snapshot's ", true);
  auto impl = std::make_unique<Impl>();
  impl->machine = files.state.machine;
  impl->components = decode_components(files.state.components, impl->machine.vcpus,
                                       kinds_of(impl->machine));
  try {
    // open_snapshot() checked that the file is exactly memory_size bytes; from_file checks the
    // descriptor again and keeps its own duplicate.
    impl->memory = MemoryImage::from_file(files.memory_fd.get(), files.state.memory_size);
  } catch (const SnapshotError& e) {
    throw SnapshotError((files.dir / snapshot::kMemoryFile).string() + ": " + e.what());
  }
  // Opened (and locked shared) once here; every VM made from this image duplicates them.
  // Overlays are part of the snapshot's content: checked when its memory is.
  impl->disks = open_recorded_disks(impl->machine.disks, files.dir, verify_disks, verify_memory);
  return std::make_shared<const VmImage>(std::move(impl));
}

MachineComponents Vm::Impl::capture_components(
    const std::function<void(const MachineComponents&)>& with_paused,
    const CaptureOptions& options) {
  std::vector<vsock::VsockMuxer::CarryPort> carry;
  for (const auto& c : options.carry_vsock) carry.push_back({c.guest_port, c.tag});
  // Resumes the transports and then the vCPUs when the capture ends, whether it succeeded or
  // not: the VM being captured keeps running.
  struct ResumeOnExit {
    Impl& impl;
    ~ResumeOnExit() {
      for (auto& t : impl.virtio) t->resume();  // no-op unless quiesced; never throws
      if (!impl.user_paused) {
        for (auto& v : impl.vcpus) v->resume();
      }
    }
  };
  pause_vcpus("snapshot");  // 1: every vCPU parked outside KVM_RUN, its I/O completed
  const ResumeOnExit resume_on_exit{*this};
  {
    std::lock_guard lock(mu);
    if (result) {
      throw InvalidStateError("the VM has stopped (" + std::string(to_string(result->reason)) + ")");
    }
  }
  for (auto& t : virtio) t->quiesce();  // 2: before the KVM state and memory are read

  MachineComponents c;
  c.machine = state::MachineState::capture(*vm, vcpu_fds(vcpus), kvm->msrs);  // 3
  c.serial = serial->save_state();                                                 // 4
  c.i8042 = i8042->save_state();
  c.boot_signal = boot_signal->save_state();
  for (size_t i = 0; i < virtio.size(); ++i) {
    MachineComponents::Slot slot;
    slot.kind = virtio_kinds[i];
    slot.transport = virtio[i]->save_state();
    switch (virtio_kinds[i]) {
      case VirtioDeviceKind::kVsock: slot.vsock = vsock_device(virtio_devices[i]).save_state(carry); break;
      case VirtioDeviceKind::kBlock: slot.block = block_device(virtio_devices[i]).save_state(); break;
      case VirtioDeviceKind::kNet: slot.net = net_device(virtio_devices[i]).save_state(); break;
    }
    c.slots.push_back(std::move(slot));
  }
  if (with_paused) with_paused(c);  // 5: guest memory, still paused
  return c;                         // 6: ResumeOnExit
}

std::optional<PageBitmaps> Vm::Impl::guest_written() {
  if (!dirty_logged || !memory.write_logged()) return std::nullopt;
  PageBitmaps pages;
  try {
    uint32_t slot = 0;
    for (const auto& r : memory.regions()) {
      pages.emplace_back(bitmap_words(r.size));
      vm->get_dirty_log(slot++, pages.back());
    }
  } catch (const KvmError& e) {
    // The slots read so far lost their record with the read: from now on this VM's freezes
    // scan pagemap, which finds every page written since the RAM was mapped or last frozen.
    std::fprintf(stderr, "forkvm: %s; freezes of this VM scan its RAM instead\n", e.what());
    dirty_logged = false;
    return std::nullopt;
  }
  return pages;
}

void Vm::Impl::restore_virtio(const MachineComponents& c) {
  if (c.slots.size() != virtio.size()) {
    throw SnapshotError("snapshot: " + std::to_string(c.slots.size()) +
                        " virtio slots for a machine with " + std::to_string(virtio.size()));
  }
  const auto a0 = Clock::now();
  // Device, then transport (which activates). The vCPUs have not run and the interrupt lines
  // are held: a worker may already fill used rings in the VM's private memory, and its edges
  // wait for restore_live().
  for (size_t i = 0; i < virtio.size(); ++i) {
    if (c.slots[i].kind != virtio_kinds[i]) throw SnapshotError("snapshot: virtio slot kind mismatch");
    switch (virtio_kinds[i]) {
      case VirtioDeviceKind::kVsock: vsock_device(virtio_devices[i]).restore_state(c.slots[i].vsock); break;
      case VirtioDeviceKind::kBlock: block_device(virtio_devices[i]).restore_state(c.slots[i].block); break;
      // Another backend and maybe another MAC: recorded, not refused (net_device.hpp).
      case VirtioDeviceKind::kNet: net_device(virtio_devices[i]).restore_state(c.slots[i].net); break;
    }
    virtio[i]->restore_state(c.slots[i].transport);
  }
  phases.activate = Clock::now() - a0;
}

void Vm::Impl::restore_legacy_lines(const MachineComponents& c) {
  // Both re-drive their IRQ line into the irqchip, which must be the snapshot's by now.
  serial->restore_state(c.serial);
  i8042->restore_state(c.i8042);
}

void Vm::Impl::restore_live(const MachineComponents& c) {
  // 1: the live half of the KVM state (TSCs, PIT, kvmclock, and the LAPICs, events and IOAPIC
  // when prepare() could not take them); prepare() set the rest and the virtio devices
  // (restore_virtio).
  c.machine.restore_live(*vm, vcpu_fds(vcpus));
  if (!c.machine.irqchip_ahead()) restore_legacy_lines(c);  // 2, else done in prepare()
  const auto now = Clock::now();
  boot_signal->restore_state(c.boot_signal, now);
  {
    // The observer is not told of restored signals; what it would have recorded is set here.
    std::lock_guard lock(mu);
    if (c.boot_signal.agent_ready.count > 0) ready = now;
    if (c.boot_signal.power_off.count > 0) {
      poweroff_announced = true;
      poweroff_status = c.boot_signal.power_off.last_arg;
    }
    if (c.boot_signal.fatal.count > 0) agent_fatal = c.boot_signal.fatal.last_arg;
  }
  // 3: the irqchip is the snapshot's now: the virtio lines open, each sending the edge its
  // device raised meanwhile (a pending InterruptStatus re-raised by the transport's restore,
  // RSTs or a TRANSPORT_RESET from the vsock device, used buffers).
  for (auto& irq : irqs) irq->release();
}

snapshot::MachineConfig Vm::Impl::machine_config(bool digests) const {
  // Disks are recorded by the images the devices hold open, not by VmConfig's paths, which
  // may name another file by now.
  snapshot::MachineConfig machine;
  machine.vcpus = config.vcpus;
  machine.memory_mib = config.memory_mib;
  machine.cmdline = boot_cmdline;
  if (config.vsock) machine.guest_cid = config.vsock->guest_cid;
  machine.net = config.net.has_value();
  machine.secrets = secrets_in_memory.load();
  for (size_t i = 0; i < virtio.size(); ++i) {
    if (virtio_kinds[i] != VirtioDeviceKind::kBlock) continue;
    const BlockDevice& dev = block_device(virtio_devices[i]);
    snapshot::DiskRecord record;
    record.id = dev.save_state().id;
    record.path = dev.disk().path();
    record.size = dev.disk().size();
    record.copy_on_write = dev.disk().copy_on_write();
    if (digests) {
      // Read-only images and copy-on-write bases only (refuse_disks): hashed through their
      // descriptor.
      const DiskImage* file = dynamic_cast<const DiskImage*>(&dev.disk());
      if (const auto* cow = dynamic_cast<const CowDisk*>(&dev.disk())) file = &cow->base();
      if (file == nullptr || !file->read_only()) {
        throw SnapshotError("snapshot: disk '" + record.id + "' is persistent (read-write)");
      }
      record.sha256 = disk_sha256(*file);
    }
    machine.disks.push_back(std::move(record));
  }
  return machine;
}

std::vector<std::shared_ptr<const FrozenDisk>> Vm::Impl::freeze_disks() {
  std::vector<std::shared_ptr<const FrozenDisk>> disks;
  for (size_t i = 0; i < virtio.size(); ++i) {
    if (virtio_kinds[i] != VirtioDeviceKind::kBlock) continue;
    disks.push_back(block_device(virtio_devices[i]).freeze_disk());
  }
  return disks;
}

void Vm::set_secrets_in_memory(bool present) noexcept { impl_->secrets_in_memory = present; }

void Vm::snapshot(const std::string& dir, const CaptureOptions& options) {
  std::lock_guard lifecycle(impl_->lifecycle_mu);
  impl_->require_running("Vm::snapshot");
  impl_->refuse_disks("Vm::snapshot", true);
  // Hashing the disk images comes before the pause: the guest keeps running meanwhile, and a
  // read-only image cannot change under it (its shared lock keeps forkvm writers out).
  const snapshot::MachineConfig machine = impl_->machine_config(true);
  impl_->capture_components([&](const MachineComponents& c) {
    // Copy-on-write overlays are written with the memory, while the devices are quiesced.
    std::vector<snapshot::OverlayToWrite> overlays;
    size_t disk = 0;
    for (size_t i = 0; i < impl_->virtio.size(); ++i) {
      if (impl_->virtio_kinds[i] != VirtioDeviceKind::kBlock) continue;
      if (const auto* cow = dynamic_cast<const CowDisk*>(&block_device(impl_->virtio_devices[i]).disk())) {
        overlays.push_back({disk, cow->written_extents(),
                            [cow](uint64_t offset, std::span<uint8_t> out) { return cow->read(offset, out); }});
      }
      ++disk;
    }
    snapshot::write_snapshot(dir, machine, encode_components(c), impl_->memory, overlays);
  }, options);
}

void Vm::Impl::refuse_disks(const char* what, bool allow_copy_on_write) const {
  // Before anything is paused, so a refused VM keeps running untouched. Read-only disks are
  // shared by reference and copy-on-write disks freeze their overlay (snapshot_disks.hpp); a
  // persistent disk is this VM's file alone, and a copy-on-write overlay has no on-disk form
  // in a snapshot directory yet.
  for (size_t i = 0; i < config.disks.size(); ++i) {
    const DiskConfig& d = config.disks[i];
    const std::string which = std::string(what) + ": disk '" + disk_id(d, i) + "' (" + d.path + ")";
    if (!d.read_only && !d.copy_on_write) {
      throw SnapshotError(which + " is persistent (read-write): only VMs whose disks are "
                          "read-only or copy-on-write can be snapshotted or forked");
    }
    if (d.copy_on_write && !allow_copy_on_write) {
      throw SnapshotError(which + " is copy-on-write: such VMs fork (Vm::freeze, "
                          "Sandbox::fork), but cannot be written to a snapshot directory yet");
    }
  }
}

void Vm::Impl::require_running(const char* what) {
  std::lock_guard lock(mu);
  if (!started) throw InvalidStateError(std::string(what) + ": the VM was never started");
  if (result) {
    throw InvalidStateError(std::string(what) + ": the VM has stopped (" +
                            std::string(to_string(result->reason)) + ")");
  }
}

std::shared_ptr<const VmImage> Vm::freeze(const CaptureOptions& options) {
  std::lock_guard lifecycle(impl_->lifecycle_mu);
  impl_->require_running("Vm::freeze");
  impl_->refuse_disks("Vm::freeze", true);
  auto image = std::make_unique<VmImage::Impl>();
  image->machine = impl_->machine_config(false);
  image->components = impl_->capture_components([&](const MachineComponents&) {
    // Disks first, while the devices are quiesced (no request in flight): a copy-on-write disk
    // seals its overlay as a layer and goes on writing a new one, as the memory below does.
    image->disks = impl_->freeze_disks();
    try {
      const std::optional<PageBitmaps> guest_written = impl_->guest_written();
      image->memory = impl_->memory.freeze(guest_written ? &*guest_written : nullptr);
      image->written_pages_logged = impl_->memory.last_freeze_logged();
    } catch (const GuestMemoryError& e) {
      // A failure while re-mapping leaves this VM's RAM unusable: stop it rather than resume
      // it. Any other failure left the RAM as it was, and the VM resumes.
      if (impl_->memory.remap_failed()) {
        impl_->finish({StopReason::kVcpuError, 0, std::string("freeze failed: ") + e.what()});
      }
      throw;
    }
  }, options);
  // What the images of this VM learned (Vm::freeze's comment): the pages its children's first
  // execs touch, so that a Sandbox::fork child takes them ahead rather than fault each.
  std::shared_ptr<const VmImage> earlier = impl_->last_frozen.lock();
  if (!earlier || !earlier->first_touches()) earlier = impl_->image;
  if (earlier) image->inherit_first_touches(earlier->impl());
  auto frozen = std::make_shared<const VmImage>(std::move(image));
  impl_->last_frozen = frozen;
  return frozen;
}

TakenVsockConnection Vm::take_vsock_connection(uint32_t guest_port) {
  for (size_t i = 0; i < impl_->virtio_kinds.size(); ++i) {
    if (impl_->virtio_kinds[i] != VirtioDeviceKind::kVsock) continue;
    VsockDevice::Taken t = vsock_device(impl_->virtio_devices[i]).take_connection(guest_port);
    return TakenVsockConnection{t.fd.release(), t.tag};  // fd -1 when there is none
  }
  return {};
}

std::unique_ptr<Vm> Vm::prepare(std::shared_ptr<const VmImage> image, const RestoreOptions& options) {
  if (!image) throw ConfigError("Vm::prepare: no image");
  const VmImage::Impl& img = image->impl();
  const snapshot::MachineConfig& m = img.machine;
  if (m.guest_cid.has_value() != options.vsock.has_value()) {
    throw ConfigError(m.guest_cid ? "Vm::restore: the snapshot's machine has a vsock device: "
                                    "RestoreOptions::vsock must give its socket path"
                                  : "Vm::restore: the snapshot's machine has no vsock device, "
                                    "but RestoreOptions::vsock is set");
  }
  if (options.vsock) validate_vsock(*options.vsock);
  // Each VM made from the image needs a backend of its own: a TAP or socket is never shared.
  if (m.net != options.net.has_value()) {
    throw ConfigError(m.net ? "Vm::restore: the snapshot's machine has a net device: "
                              "RestoreOptions::net must give its TAP or descriptor"
                            : "Vm::restore: the snapshot's machine has no net device, "
                              "but RestoreOptions::net is set");
  }
  if (options.net) validate_net(*options.net);

  VmConfig config;
  config.vcpus = m.vcpus;
  config.memory_mib = m.memory_mib;
  config.console = options.console;
  config.kvm_device = options.kvm_device;
  config.vsock = options.vsock;
  config.disks = disk_configs(m);
  config.net = options.net;
  // KvmHost first (opened once per process): it outlives the shell pool (shell_pool.cpp).
  const ShellShape shape{KvmHost::get(options.kvm_device), options.kvm_device, m.vcpus, m.memory_mib};
  // Before any VM exists: a host without the snapshot's CPU features is refused by name.
  for (const auto& v : img.components.machine.vcpus) {
    state::require_cpu_features(v.cpuid, shape.kvm->supported_cpuid);
  }
  const auto t0 = Clock::now();
  // A shell from the pool (KVM VM, slots over reserved RAM, irqchip, PIT, legacy devices,
  // vCPUs), or one built now: the same machine either way (vm.cpp's build order).
  std::unique_ptr<Impl> impl = ShellPool::instance().take(shape);
  const bool from_shell = impl != nullptr;
  if (from_shell) {
    impl->phases = {};  // built ahead of time, off this VM's path
  } else {
    impl = build_shell(shape);
  }
  impl->phases.from_shell = from_shell;
  impl->config = config;
  impl->image = image;
  impl->boot_cmdline = m.cmdline;
  impl->secrets_in_memory = m.secrets;  // its memory is the image's
  const auto m0 = Clock::now();
  impl->memory.map_image_over(img.memory);  // the slots already point at these addresses
  // Host code's writes logged from the start, before any device runs (Vm::freeze).
  if (impl->dirty_logged) impl->memory.start_write_log();
  const auto d0 = Clock::now();
  impl->phases.memory += d0 - m0;
  // A bad socket path, disk or TAP fails here; the shell is destroyed with the Impl.
  impl->create_virtio_devices();
  impl->attach_virtio_devices();
  const auto s0 = Clock::now();
  impl->phases.devices += s0 - d0;
  // The KVM state that does not move with time (machine_state.hpp), here rather than in
  // launch(): a template's pool prepares its VMs ahead, so its forks skip this part.
  img.components.machine.restore_ahead(*impl->vm, vcpu_fds(impl->vcpus));
  // With the whole irqchip restored ahead (no LAPIC timer on host time), the legacy devices
  // drive their lines now too; else restore_live() does it once the irqchip is in place.
  if (img.components.machine.irqchip_ahead()) impl->restore_legacy_lines(img.components);
  impl->phases.state_ahead = Clock::now() - s0;
  // The virtio devices restored and activated, their interrupt lines held until launch():
  // a template's pool prepares its VMs ahead, so its forks do not wait for the device workers
  // to start. A bad device or queue state throws here, and the VM (its workers joined by
  // ~Impl) goes with `impl`.
  impl->restore_virtio(img.components);
  // The vCPU threads made here, parked until launch() wakes them: for a pooled VM, creating
  // each thread and installing its filter happen off the fork's path.
  const auto v0 = Clock::now();
  for (auto& v : impl->vcpus) v->start(false);
  impl->phases.threads = Clock::now() - v0;
  impl->build_time = Clock::now() - t0;
  return std::unique_ptr<Vm>(new Vm(std::move(impl)));
}

void Vm::launch() {
  std::lock_guard lifecycle(impl_->lifecycle_mu);
  if (!impl_->image) throw InvalidStateError("Vm::launch: the VM was not made by Vm::prepare");
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->launched || impl_->started) throw InvalidStateError("Vm::launch: called twice");
    if (impl_->result) throw InvalidStateError("Vm::launch: the VM was stopped");
    impl_->launched = true;
    // Before restore_live(), which marks the agent ready when it was: ready >= started.
    impl_->started = Clock::now();
  }
  const auto t0 = Clock::now();
  impl_->restore_live(impl_->image->impl().components);
  const auto t1 = Clock::now();
  impl_->start_console();
  for (auto& v : impl_->vcpus) v->resume();  // parked by prepare()
  const auto t2 = Clock::now();
  impl_->phases.state = t1 - t0;
  impl_->phases.start = t2 - t1;
  impl_->build_time += t2 - t0;
}

std::unique_ptr<Vm> Vm::restore(std::shared_ptr<const VmImage> image, const RestoreOptions& options) {
  auto vm = prepare(std::move(image), options);
  vm->launch();
  return vm;
}

std::unique_ptr<Vm> Vm::restore(const std::string& dir, const RestoreOptions& options) {
  const auto t0 = Clock::now();
  auto vm = restore(VmImage::open(dir, options.verify_memory, options.verify_disks), options);
  vm->impl_->build_time = Clock::now() - t0;  // including opening and verifying the snapshot
  return vm;
}

std::optional<std::pair<std::array<uint8_t, 6>, std::array<uint8_t, 6>>> Vm::net_mac_change() const {
  for (size_t i = 0; i < impl_->virtio_kinds.size(); ++i) {
    if (impl_->virtio_kinds[i] != VirtioDeviceKind::kNet) continue;
    const NetDevice& dev = net_device(impl_->virtio_devices[i]);
    const NetDevice::Mac held = dev.guest_mac();  // the snapshot's MAC, or the device's own
    if (held != dev.mac()) return std::make_pair(held, dev.mac());
  }
  return std::nullopt;
}

VmBuildPhases Vm::build_phases() const { return impl_->phases; }

VmMemoryUsage Vm::memory_usage() const {
  const GuestMemory::Usage u = impl_->memory.usage();
  return {u.private_bytes, u.shared_bytes};
}

VmHugePages Vm::huge_pages() const {
  const HugePageAdvice& a = impl_->memory.huge_page_advice();
  const HugePageUsage u = impl_->memory.huge_page_usage();
  VmHugePages out;
  out.advised = a.asked;
  out.advice_accepted = a.accepted;
  out.advice_error = a.error;
  out.rss_bytes = u.rss_bytes;
  out.anon_huge_bytes = u.anon_huge_bytes;
  out.file_pmd_bytes = u.file_pmd_bytes;
  return out;
}

namespace {

/// Maps the extents of `t` (memory-file offsets, already faulted in on the host) into the VM's
/// stage-2 tables through vCPU 0 (the tables are shared by every vCPU in the same mode). Runs
/// after Vm::prepare set the vCPUs' CPUID and special registers, which choose the MMU; stops at
/// the first refusal and says why in `out`.
void premap_stage2(Vm::Impl& impl, const GuestMemory::Touched& t, VmPrefault& out) {
  if (!impl.vm || impl.vcpus.empty()) {
    out.stage2_unavailable = "the VM has no vCPU yet";
    return;
  }
  if (impl.vm->check_extension(kvm_abi::kCapPreFaultMemory) <= 0) {
    out.stage2_unavailable = "KVM has no KVM_PRE_FAULT_MEMORY (Linux 6.10+)";
    return;
  }
  const VcpuFd& vcpu = impl.vcpus.front()->vcpu();
  try {
    for (const auto* extents : {&t.written, &t.read}) {
      impl.memory.for_each_piece(*extents, [&](const GuestMemory::ExtentPiece& p) {
        vcpu.pre_fault_memory(p.gpa, p.length);
        out.stage2_bytes += p.length;
        return true;
      });
    }
  } catch (const KvmError& e) {
    // EOPNOTSUPP: this KVM shadows the guest's page tables (no NPT/EPT), where a guest-physical
    // range cannot be mapped ahead. Anything else: the guest faults the rest in as it goes.
    out.stage2_unavailable = e.what();
  }
}

}  // namespace

VmPrefault Vm::prefault_memory(const TouchedMemory& touched, bool stage2) {
  std::lock_guard lifecycle(impl_->lifecycle_mu);  // not while launch() runs
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->launched || impl_->started) {
      throw InvalidStateError("prefault_memory: the VM was launched already");
    }
  }
  const auto t0 = Clock::now();
  struct Timed {  // however it returns
    Vm::Impl& impl;
    Clock::time_point t0;
    ~Timed() { impl.phases.prefault += Clock::now() - t0; }
  } timed{*impl_, t0};
  GuestMemory::Touched t;
  for (const auto& [offset, length] : touched.written) t.written.push_back({offset, length});
  for (const auto& [offset, length] : touched.read) t.read.push_back({offset, length});
  VmPrefault out;
  out.host_bytes = impl_->memory.prefault(t);
  if (!stage2) {
    out.stage2_unavailable = "not asked for";
    return out;
  }
  if (out.host_bytes == 0) {
    out.stage2_unavailable = "no guest pages were taken on the host";
    return out;
  }
  premap_stage2(*impl_, t, out);
  return out;
}

}  // namespace forkvm
