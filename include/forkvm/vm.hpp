// forkvm::Vm: boots a Linux guest on /dev/kvm and runs it on one thread per vCPU.
// This header is free of KVM types; everything behind it lives in vmm/.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
  /// Its directory must be writable by its owner only and owned by this user or root (anyone
  /// else who can write there could swap the socket for theirs): creating the VM throws a
  /// forkvm::Error (VsockError, saying so) otherwise. The socket is made mode 0600. A socket file left there by a dead
  /// process is replaced; one a live process listens on is refused.
  std::string uds_path;
};

/// A virtio-blk disk (virtio 1.2 §5.2) backed by a raw image file, as Firecracker's drives.
/// The guest sees the disks as /dev/vda, /dev/vdb, ... in the order given, and each disk's
/// `id` as its serial (/sys/block/vdX/serial, /dev/disk/by-id/virtio-<id> with udev). Three
/// kinds:
/// - read-only (`read_only`): the image is shared by any number of VMs, none of which may
///   write it; the guest's writes fail (EROFS/EIO).
/// - persistent (neither flag, the default, as Firecracker's drives): the guest writes the
///   file directly (fdatasync on its flush) and the image is locked for this VM alone.
/// - copy-on-write (`copy_on_write`): the image is a read-only base and the guest's writes go
///   to a private overlay (an unlinked file in `overlay_dir`) that is discarded with the VM.
///   It forks with the VM: a child starts from the parent's disk content and neither sees the
///   other's later writes; nothing is copied at fork time.
/// A VM whose disks are read-only or copy-on-write forks (Vm::freeze, Sandbox::fork) and
/// snapshots: Vm::snapshot records each image by reference (path, size and SHA-256, checked on
/// restore) and a copy-on-write disk's written blocks in an overlay file inside the snapshot
/// directory. A VM with a persistent disk can be neither snapshotted nor forked: that refuses
/// with SnapshotError.
struct DiskConfig {
  /// The image: a regular file, not empty, a whole number of 512-byte sectors.
  std::string path;
  /// Whether the guest may only read it (VIRTIO_BLK_F_RO; writes fail with EIO/EROFS).
  bool read_only = false;
  /// The serial the guest reads (1-20 printable ASCII characters, no spaces; unique in the VM).
  /// Empty means "disk<index>".
  std::string id;
  /// Whether writes go to a private copy-on-write overlay instead of the image (see above);
  /// not together with read_only.
  bool copy_on_write = false;
  /// Where a copy-on-write disk's overlay files are made (unlinked at once, so they never
  /// outlive the VM); empty: $TMPDIR, else /var/tmp. Must hold up to the disk's size.
  std::string overlay_dir;
};

/// A virtio-net device (virtio 1.2 §5.1): one Ethernet interface in the guest (eth0) whose
/// frames go to and come from a host descriptor that carries one frame per read and write.
/// Give exactly one of:
/// - `tap`: the name of a TAP interface (1-15 characters), opened with IFF_TAP | IFF_NO_PI
///   (created if it does not exist, which needs CAP_NET_ADMIN; a persistent TAP owned by the
///   user needs nothing); with `netns` (a path such as /var/run/netns/NAME) it is opened inside
///   that network namespace, on a short-lived thread, so this process's namespace never changes;
/// - `fd`: a descriptor the caller opened, duplicated by the VM (the caller keeps and closes
///   its own): a TAP descriptor, or a SOCK_DGRAM or SOCK_SEQPACKET socket (e.g. one end of an
///   AF_UNIX socketpair), which keeps frame boundaries as a TAP does. It is made non-blocking
///   (a flag shared with the caller's copy). `netns` is refused with it.
/// The device offers no offloads: the guest sends and receives whole frames of at most its MTU
/// (1500 unless changed in the guest) plus the Ethernet header.
struct NetConfig {
  /// The TAP interface to open; empty when `fd` is given.
  std::string tap;
  /// The network namespace to open `tap` in (a file such as /var/run/netns/NAME); empty: this
  /// process's. Only with `tap`.
  std::string netns;
  /// A TAP or datagram socket descriptor to use instead of `tap`; -1 when `tap` is given.
  int fd = -1;
  /// The guest's MAC address; all zeros (the default) picks a random locally administered
  /// unicast address. A multicast address (bit 0 of the first byte set) is refused.
  std::array<uint8_t, 6> mac{};
};

/// How a booted VM's guest RAM is backed on the host (VmConfig::ram_backing). A VM made from
/// an image (restore, fork) always maps the image copy-on-write, whatever its parent used.
enum class RamBacking {
  /// A memfd mapped shared, 4 KiB pages unless the host's shmem_enabled is "always": the
  /// first fork or snapshot maps or writes the memfd itself, so Vm::freeze copies nothing.
  kMemfd,
  /// The same memfd, advised MADV_HUGEPAGE so that where the host's
  /// /sys/kernel/mm/transparent_hugepage/shmem_enabled allows ("advise", "within_size",
  /// "always") it is filled with 2 MiB shmem pages. Forks exactly as kMemfd (nothing copied;
  /// children read the parent's huge pages and copy 4 KiB pages on write). A host that refuses
  /// or gives no huge pages is not an error: Vm::huge_pages() says what it got.
  kMemfdHugePages,
  /// Anonymous private memory (transparent huge pages where the host's `enabled` allows, as
  /// any process memory). No file holds it, so Vm::freeze (Sandbox::fork, make_template)
  /// copies every page the guest ever touched into a new memory file before the first child
  /// can start, and Vm::snapshot writes them as for any VM: forks work, but are not free.
  kAnonymous,
};

/// "memfd", "memfd-huge" or "anonymous".
std::string_view to_string(RamBacking backing);

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
  /// How the guest RAM is backed (see RamBacking); validate() refuses a value outside the enum.
  RamBacking ram_backing = RamBacking::kMemfd;
  /// Kernel command line. Empty means default_cmdline(); see extra_cmdline to add to it.
  std::string cmdline;
  /// With the default command line (`cmdline` empty): the guest kernel zeroes every page it
  /// frees (init_on_free=1), so a secret removed in the guest does not stay in free pages that
  /// a snapshot or fork copies. Its cost: the kernel also clears all free RAM at boot, so a
  /// booted VM's whole RAM becomes resident on the host at once (kvm-lab, 256 MiB: 255 MiB
  /// resident instead of 29 MiB, boot 12-13 s instead of 6 s under TCG). Forks and restores
  /// share the template's pages and do not pay it again. false leaves the parameter out:
  /// for sandboxes booted one by one that never hold secrets.
  bool zero_freed_memory = true;
  /// Appended (after a space) to the command line.
  std::string extra_cmdline;
  /// Receives the serial console output, in order, on a thread of the VM's own (never a vCPU
  /// thread: a slow callback does not stall the guest). At most 256 KiB wait for it; output
  /// that comes faster than the callback takes it is dropped and counted
  /// (Vm::console_bytes_dropped()). Vm::stop() returns after the rest was delivered. An
  /// exception from it is logged once and ignored. Optional: the last part of the console is
  /// always kept for error messages (Vm::console_tail()).
  std::function<void(std::string_view)> console;
  /// The KVM device to open.
  std::string kvm_device = "/dev/kvm";
  /// A vsock device for host <-> guest streams; none when unset.
  std::optional<VsockConfig> vsock;
  /// Disks, in the order the guest sees them (/dev/vda first). With the vsock and net devices,
  /// at most 19 virtio devices fit in a VM.
  std::vector<DiskConfig> disks;
  /// A network interface (virtio-net); none when unset. Its virtio slot follows the disks.
  std::optional<NetConfig> net;
};

/// Attaches `image`, an ext4 root filesystem such as the built-in Debian one, to `config` as the
/// first disk (read-only, serial "rootfs", so /dev/vda) and names it on the kernel command line
/// (forkvm.root=rootfs): the forkvm agent mounts it under a writable overlay in guest RAM and
/// moves into it before it reports ready. Nothing when `image` is empty. A Sandbox does this
/// itself for SandboxConfig::root_filesystem.
void attach_root_filesystem(VmConfig& config, const std::string& image);

/// The kernel command line used when VmConfig::cmdline is empty; without init_on_free=1 when
/// `zero_freed_memory` is false (VmConfig::zero_freed_memory).
std::string default_cmdline(bool zero_freed_memory = true);

/// The command line a VM built from `config` boots with: one `virtio_mmio.device=` parameter
/// per virtio device (e.g. vsock), then `cmdline` (or default_cmdline() when empty), then a
/// space and `extra_cmdline` when that is set. The device parameters come first so that a
/// "--" in the caller's part cannot hand them to init instead of the kernel.
std::string effective_cmdline(const VmConfig& config);

/// Checks a configuration without touching KVM: sizes and counts in range, files readable,
/// the vsock and net sections (if any) well-formed (the TAP or descriptor itself is opened
/// when the VM is built). Throws ConfigError or ImageError. Vm::create()
/// calls it first.
void validate(const VmConfig& config);

/// How Vm::restore() builds the new machine. The machine itself (vCPUs, memory size, devices,
/// the guest's command line) comes from the snapshot; only the host-side parts are chosen here.
struct RestoreOptions {
  /// The vsock device of the restored VM: required when the snapshot's machine had one (and
  /// refused when it had none). It must use another socket path than the VM the snapshot was
  /// taken from, if that one still runs. The CID is used only for snapshots made before the
  /// connection table existed (whose guest learns it from a TRANSPORT_RESET); others keep the
  /// snapshot's CID (devices/SNAPSHOT.md "vsock across a snapshot").
  std::optional<VsockConfig> vsock;
  /// The network device of the restored VM (and of each VM Vm::prepare() makes from an image,
  /// so each fork has its own): required when the snapshot's machine had one (ConfigError
  /// otherwise), refused when it had none. Its backend is this VM's own; its MAC may differ
  /// from the snapshot's (all zeros: a fresh random one). The guest's driver keeps the MAC it
  /// read when it probed the device, in the VM the snapshot came from, until it is changed
  /// inside the guest (devices/virtio/net/README.md).
  std::optional<NetConfig> net;
  /// Receives the serial console output (as VmConfig::console).
  std::function<void(std::string_view)> console;
  /// The KVM device to open.
  std::string kvm_device = "/dev/kvm";
  /// Re-hash the memory file against its digests before mapping it (the state digest is always
  /// checked): chunk by chunk, a chunk that is all hole in the file checked without reading it
  /// and the others on up to 4 threads (snapshot/README.md), copying the data while hashing
  /// into a sealed memfd that is what gets mapped: the file
  /// may then change or vanish without reaching the VM. Turn off only for a snapshot already
  /// verified in this process: the file itself is then mapped, and it must not change while
  /// the VM lives (a file truncated under it makes this process take SIGBUS when it touches
  /// a lost page; one shrunk before the restore is refused with SnapshotError).
  bool verify_memory = true;
  /// Re-hash each disk image the snapshot records and compare it with the recorded SHA-256
  /// (its size is always checked). An image hashed once stays known to this process until
  /// the file changes, and to later processes through a cache of digests by file identity
  /// ($FORKVM_DIGEST_CACHE, else ~/.cache/forkvm/digests; "off" turns it off), so leaving
  /// this on costs one hash per image until it changes. Turn off only for images verified
  /// otherwise.
  bool verify_disks = true;
};

class VmImage;

/// What a capture (Vm::snapshot, Vm::freeze) does with the VM's vsock connections.
struct CaptureOptions {
  /// A guest port whose established vsock connections are carried, and a tag of the caller's
  /// that goes with them (a Sandbox: its agent protocol version).
  struct CarryPort {
    uint32_t guest_port = 0;
    uint32_t tag = 0;
  };
  /// Guest ports whose established vsock connections every VM made from the capture takes
  /// over as they stand (Vm::take_vsock_connection) instead of having them reset. The caller
  /// promises that the connection is at a message boundary of its own protocol in both
  /// directions, with nothing in flight (a Sandbox: its agent connection while no request is
  /// pending); the device itself refuses one with bytes buffered either way. Every other
  /// connection gets an RST in each VM made from the capture; the guest keeps its listeners
  /// and its CID. The VM being captured keeps all of them, untouched.
  std::vector<CarryPort> carry_vsock;
};

/// A vsock connection a VM took over from its capture (Vm::take_vsock_connection).
struct TakenVsockConnection {
  int fd = -1;       ///< a connected Unix stream socket the caller owns and must close; -1: none
  uint32_t tag = 0;  ///< CaptureOptions::CarryPort::tag of the capture
};

/// The hash of one 4 KiB page of an image's guest RAM (VmImage::page_digests()).
struct PageDigest {
  uint64_t gpa = 0;   ///< the page's guest-physical address
  uint64_t hash = 0;  ///< a 64-bit hash of its bytes (not cryptographic)
};

/// The guest-physical addresses of the pages whose digests differ between two digests of the
/// same image (and of pages only one of them has).
std::vector<uint64_t> changed_pages(const std::vector<PageDigest>& before,
                                    const std::vector<PageDigest>& after);

/// Where the time of building a VM from an image went (Vm::prepare() and Vm::launch()). The
/// phases follow the build order: KVM VM, memory, devices, vCPUs, state ahead, activate (all in
/// prepare()), then state and start (launch()).
struct VmBuildPhases {
  /// KVM_CREATE_VM, TSS, irqchip and PIT (KVM itself is opened once per process).
  std::chrono::nanoseconds create_vm{};
  /// Mapping the image's memory copy-on-write and registering the memory slots.
  std::chrono::nanoseconds memory{};
  /// Legacy devices and virtio devices (vsock listening socket, irqfd, ioeventfds).
  std::chrono::nanoseconds devices{};
  /// KVM_CREATE_VCPU and the (not yet started) vCPU threads' objects.
  std::chrono::nanoseconds vcpus{};
  /// Restoring the KVM state that does not move with time (Vm::prepare()): each vCPU's
  /// CPUID, registers, FPU/XSAVE, debug registers and architectural MSRs (not the TSC's), and
  /// the PICs. When no LAPIC timer counts on host time (the usual case: a Linux guest runs the
  /// TSC-deadline mode), also the LAPICs, paravirtual MSRs, pending events, the IOAPIC and the
  /// legacy devices' state.
  std::chrono::nanoseconds state_ahead{};
  /// Then, still in Vm::prepare(), the virtio devices: each one's state restored and, for an
  /// activated one, its worker thread started and its queues kicked; the interrupts it raises
  /// wait for launch(), which sends them once the irqchip is restored.
  std::chrono::nanoseconds activate{};
  /// Restoring the rest right before the vCPUs run (Vm::launch()): each vCPU's TSC MSRs, the
  /// PIT and kvmclock (and whatever of the LAPICs, paravirtual MSRs, events, IOAPIC and legacy
  /// devices state_ahead did not take), then the virtio interrupt lines opened.
  std::chrono::nanoseconds state{};
  /// Making the vCPU threads, parked, at the end of Vm::prepare() (a VM from an image).
  std::chrono::nanoseconds threads{};
  /// Starting the vCPU threads (Vm::start()), or waking the parked ones (Vm::launch()).
  std::chrono::nanoseconds start{};
  /// Vm::prefault_memory(), between prepare() and launch(): a child's first touches taken
  /// ahead of its guest (zero when none were).
  std::chrono::nanoseconds prefault{};
  /// The KVM VM, its memory slots, irqchip, PIT, legacy devices and vCPUs came from the shell
  /// pool (forkvm/shell_pool.hpp), built ahead of time; create_vm and vcpus are then zero and
  /// memory and devices count only mapping the image and adding the virtio devices. False:
  /// built inline (pool empty, off, or the machine's shape not warm yet).
  bool from_shell = false;
  /// The sum of the phases.
  std::chrono::nanoseconds total() const {
    return create_vm + memory + devices + vcpus + state_ahead + state + activate + threads + start +
           prefault;
  }
};

/// What a VM's guest RAM costs the host (from /proc/self/pagemap over the VM's mapping).
struct VmMemoryUsage {
  /// Pages this VM has written since it was started from its image: private to it.
  uint64_t private_bytes = 0;
  /// Pages of the image this VM has read, shared with every other VM of the same image.
  uint64_t shared_bytes = 0;
};

/// KVM's cumulative event counters for a VM, summed over its vCPUs (KVM_GET_STATS_FD, Linux
/// 5.14+): where a guest's time goes besides running, e.g. the page faults of a fork's first
/// touches. Each counter counts from the vCPU's creation; take differences.
struct KvmCounters {
  /// False when this host's KVM has no binary statistics: every counter is then 0.
  bool available = false;
  /// VM exits of every kind (pf_taken and the rest below are among them).
  uint64_t exits = 0;
  /// Page faults KVM's MMU handled (`pf_taken`): the guest's own faults under shadow paging,
  /// nested (NPT/EPT) faults otherwise. A guest page touched for the first time costs one.
  uint64_t page_faults = 0;
  /// Of those, the ones that installed a mapping (`pf_fixed`).
  uint64_t page_faults_fixed = 0;
  /// HLT exits: the guest went idle.
  uint64_t halt_exits = 0;
  /// Exits to forkvm for MMIO (device registers) and for port I/O.
  uint64_t mmio_exits = 0;
  uint64_t io_exits = 0;
  /// Exits for a host interrupt that arrived while the guest ran (`irq_exits`), and interrupts
  /// KVM delivered to the guest (`irq_injections`: its timer, its devices, IPIs).
  uint64_t irq_exits = 0;
  uint64_t irq_injections = 0;
  /// Exits that needed KVM to emulate a guest instruction (`insn_emulation`).
  uint64_t emulations = 0;
};

/// The guest pages a VM started from an image has touched, as extents {offset, length} of the
/// image's memory layout (Vm::touched_memory()): `written` ones it holds a private copy of,
/// `read` ones it shares with the image. Another VM of the same image takes them ahead of its
/// guest with Vm::prefault_memory().
struct TouchedMemory {
  std::vector<std::pair<uint64_t, uint64_t>> written;
  std::vector<std::pair<uint64_t, uint64_t>> read;
  /// Bytes of `written` and of `read`.
  uint64_t written_bytes() const noexcept;
  uint64_t read_bytes() const noexcept;
};

/// What Vm::prefault_memory() took ahead of the guest.
struct VmPrefault {
  /// Bytes of guest memory faulted into the host's page tables (the written pages copied, the
  /// read ones mapped). 0 for a booted VM, or a host kernel without MADV_POPULATE_* (< 5.14).
  uint64_t host_bytes = 0;
  /// Bytes of those also mapped into KVM's stage-2 (NPT/EPT) tables, so the guest's first
  /// touch takes no nested page fault.
  uint64_t stage2_bytes = 0;
  /// Why nothing was mapped into the stage-2 tables, when nothing was (empty otherwise): e.g.
  /// a KVM older than 6.10, or one with shadow paging (no NPT/EPT), which cannot.
  std::string stage2_unavailable;
};

/// Huge pages behind a VM's guest RAM (Vm::huge_pages()): what was asked, and what the host's
/// page tables for the RAM hold now (/proc/self/smaps over the VM's mappings).
struct VmHugePages {
  /// MADV_HUGEPAGE was asked for (RamBacking::kMemfdHugePages).
  bool advised = false;
  /// ... and the host accepted it (it may still give no huge pages: see the byte counts).
  bool advice_accepted = false;
  /// Why the host refused the advice, when it did.
  std::string advice_error;
  /// Resident bytes of the RAM's mappings, any page size.
  uint64_t rss_bytes = 0;
  /// Anonymous transparent huge pages (AnonHugePages): anonymous RAM.
  uint64_t anon_huge_bytes = 0;
  /// Shmem or file huge pages mapped by PMD (ShmemPmdMapped + FilePmdMapped): a memfd's.
  uint64_t file_pmd_bytes = 0;
};

/// Why a VM stopped.
enum class StopReason {
  kPowerOff,    ///< the guest agent announced a power-off and reset the machine
  kGuestReset,  ///< the guest reset without the agent announcing it (kernel panic, reboot)
  kAgentFatal,  ///< the agent reported a fatal error and reset the machine
  kTripleFault, ///< the CPU shut down (triple fault)
  kVcpuError,   ///< KVM could not run a vCPU (entry failure, internal error, ...)
  kHostStop,    ///< stop() was called
  /// A device could not go on: it threw on a vCPU or its worker thread (the host ran out of
  /// memory, or a bug). `detail` names the device and the error. The rest of the process is
  /// unaffected.
  kDeviceError,
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

/// A frozen machine that VMs start from: guest memory that every VM made from it maps
/// copy-on-write, plus the vCPU, VM and device state, decoded and checked once. Made by open()
/// (a snapshot directory, verified once) or Vm::freeze() (a running VM). Immutable and safe to
/// share between threads; it keeps its memory files open until the last VM made from it and
/// the last shared_ptr to it are gone.
class VmImage {
 public:
  /// Opens and checks the snapshot in `dir` (as Vm::restore: state digest always, memory
  /// digest when `verify_memory`, sizes and every component decoded) and opens the disk
  /// images it records (size always, SHA-256 when `verify_disks`: RestoreOptions). Throws
  /// SnapshotError, naming the image when a disk is missing or has changed, and naming the
  /// file and the reason when the directory or a file in it is not the user's own (another
  /// owner, a group or world write bit, more than one hard link), or when the machine's RAM is
  /// more than this host can give (VmConfig::memory_mib's rule), before anything is mapped.
  /// With `verify_memory` the memory is a sealed copy; without it the file itself is mapped
  /// and must not change while the image or a VM made from it lives (RestoreOptions).
  ///
  /// Opening the same directory again returns the image opened before, without reading the
  /// files again, when that image is still alive (a VM or Template holds it, or keep_opened()
  /// keeps it), it passed the checks asked for now, and no file changed: the directory, every
  /// entry in it and every disk image it names have the same device, inode, mode, owner, link
  /// count, size, mtime and ctime as when it was opened (a write or chmod changes the ctime,
  /// which only the kernel sets). Anything else opens and checks it anew.
  static std::shared_ptr<const VmImage> open(const std::string& dir, bool verify_memory = true,
                                             bool verify_disks = true);
  /// How many of the most recently opened snapshot images this process keeps alive for
  /// open() to reuse after their last VM is gone (default 1). Each holds its memory (with
  /// verify_memory, a sealed copy of the snapshot's data in RAM) and its disk images open,
  /// locked shared. 0 reuses only images still in use. Lowering it releases the others.
  static void keep_opened(size_t n);
  ~VmImage();
  VmImage(const VmImage&) = delete;
  VmImage& operator=(const VmImage&) = delete;

  /// The machine's vCPU count.
  uint32_t vcpus() const noexcept;
  /// The machine's RAM in MiB.
  uint64_t memory_mib() const noexcept;
  /// Whether the machine has a vsock device (RestoreOptions::vsock is then required).
  bool has_vsock() const noexcept;
  /// Whether the machine has a virtio-net device (RestoreOptions::net is then required).
  bool has_net() const noexcept;
  /// Whether secrets were in guest memory when it was captured (Vm::set_secrets_in_memory):
  /// then every VM made from the image has them too. Always false for a snapshot written by a
  /// forkvm that did not record it (format < 1.3).
  bool has_secrets() const noexcept;
  /// Overlay layers above the base memory file: 0 for a snapshot or the first freeze of a
  /// booted VM, one more for each freeze of a VM started from an image (merged into one when
  /// there would be more than a few).
  size_t memory_layers() const noexcept;
  /// Bytes of guest RAM held by the overlay layers (copied pages; the base is never copied).
  uint64_t overlay_bytes() const noexcept;
  /// Whether the freeze that made this image found the pages its VM had written in logs (KVM's
  /// dirty log of the guest's writes, the VMM's write log of its devices' writes), in time that
  /// follows the pages written: true for a VM made from an image. False when it scanned the
  /// VM's RAM (/proc/self/pagemap: a booted VM after its first freeze, or a KVM that refused
  /// its dirty log), copied nothing (a booted VM's first freeze), or for a snapshot directory.
  bool written_pages_logged() const noexcept;
  /// A hash of every 4 KiB page of the image's RAM as a child sees it (base with overlays), in
  /// guest-physical order. An image never changes after it was made, so two calls must agree
  /// (changed_pages()); tools use it to prove that (forkvm-bench fork-stress). Reads all of the
  /// RAM: about as long as copying it.
  std::vector<PageDigest> page_digests() const;

  /// The guest pages VMs made from this image touched by the end of their guests' first exec,
  /// once one such VM has told (Vm::teach_first_touches()); null before. The union of what the
  /// first three VMs to tell touched: one VM's guest may skip pages that most touch (work a
  /// timer did just after its exec), and every later VM would fault them in. Each lesson that
  /// adds pages publishes a new set; a set once returned never changes. An image Vm::freeze()
  /// makes starts out with its VM's earlier image's set (freeze()). Not part of the
  /// snapshot: each process learns it anew. Template and Sandbox::restore
  /// give these pages to the VMs they make (Vm::prefault_memory), so that a child's first exec
  /// does not stop on a host page fault for each; the Templates and restores of one snapshot
  /// directory share its image while it stays open (open()), and with it what was learned.
  std::shared_ptr<const TouchedMemory> first_touches() const;

  struct Impl;
  /// Internal: made by open() and Vm::freeze().
  explicit VmImage(std::unique_ptr<Impl> impl);
  /// Internal.
  const Impl& impl() const noexcept { return *impl_; }

 private:
  // open() without the table of opened images.
  static std::shared_ptr<const VmImage> open_uncached(const std::string& dir, bool verify_memory,
                                                      bool verify_disks);

  std::unique_ptr<Impl> impl_;
};

/// One microVM. Create it, start() it, then wait_ready() and/or wait(). Destroying it stops
/// the vCPUs and releases every resource.
class Vm {
 public:
  /// Validates the config, opens KVM and builds the machine (memory, irqchip, devices, boot
  /// structures, vCPUs), without running it. Throws ConfigError, ImageError, KvmError, or
  /// another forkvm::Error when the vsock device cannot listen on VsockConfig::uds_path or the
  /// net device's TAP cannot be opened (the message names the TAP and the errno text).
  static std::unique_ptr<Vm> create(const VmConfig& config);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  /// Starts every vCPU. Call once.
  void start();
  /// Waits until the guest agent signals ready. Returns true when it did, false when `timeout`
  /// passed first. Throws GuestError (with the console tail) if the VM stopped before ready.
  bool wait_ready(std::chrono::milliseconds timeout);
  /// Waits until the VM stops by itself; nullopt when `timeout` passed first. A timeout of 0
  /// (or less) only looks, without sleeping.
  std::optional<VmResult> wait(std::chrono::milliseconds timeout);
  /// Stops every vCPU at its next exit (kicking it out of KVM_RUN) and returns once all are
  /// parked outside the guest. Devices keep their state; resume() continues. No-op once the VM
  /// has stopped. Throws TimeoutError (sandbox_errors.hpp) when a vCPU does not stop within
  /// 10 s because its thread is stuck in a device call; the VM then keeps running (snapshot()
  /// and freeze() fail the same way), and stop() still ends it once the call returns. Throws
  /// InvalidStateError before start() or launch().
  void pause();
  /// Lets paused vCPUs run again. No-op before start() or launch() (a prepared VM's vCPUs
  /// wait for launch()).
  void resume();
  /// Stops the VM (idempotent) and returns how it ended. Virtio devices are reset too (their
  /// workers stop; vsock host sockets see EOF): a stopped VM does not run again.
  VmResult stop();
  /// stop() without waiting: the VM ends as stopped by the host and its vCPUs are told to leave
  /// KVM_RUN, and the console callback is never called again once this returns (a call that is
  /// running is waited for, unless this runs inside it). The threads are joined by a later
  /// stop() or the destructor; a Sandbox hands that to its reaper thread.
  void request_stop();

  /// Writes a snapshot of the running VM to the new directory `dir` (snapshot/README.md: memory
  /// file, state.json and its digest; `dir` must not exist and appears complete or not at all).
  /// The vCPUs are paused, the virtio devices quiesced (vsock: its host connections stay open;
  /// a VM restored from the snapshot takes over those `options` carries and resets the rest), the machine and every
  /// device captured and guest memory written; then the devices and vCPUs resume and this VM
  /// keeps running with its connections (a VM paused with pause() stays paused). Throws InvalidStateError when the VM was not
  /// started or has stopped, SnapshotError when the state cannot be captured or written, and
  /// KvmError when KVM refuses to read the state.
  void snapshot(const std::string& dir, const CaptureOptions& options = {});
  /// Tells the VM whether secrets are in its guest memory now (Sandbox::set_secret sets it,
  /// Sandbox::clear_secrets clears it; a VM made from an image starts with the image's
  /// has_secrets()). snapshot() and freeze() record it, so that a Template can refuse to hand
  /// out copies of them. Thread-safe.
  void set_secrets_in_memory(bool present) noexcept;
  /// Builds a VM from the snapshot in `dir` and starts its vCPUs: the state digest (and, with
  /// RestoreOptions::verify_memory, the memory digest) is verified, guest memory is the memory
  /// file mapped copy-on-write (nothing is copied, and nothing this VM writes reaches the file),
  /// and the machine is restored in the order of vmm/state and devices/SNAPSHOT.md. The new VM
  /// is already ready when the snapshot's was (wait_ready() returns true at once). Throws
  /// SnapshotError for a missing, corrupt or inconsistent snapshot or a host CPU that lacks
  /// features the snapshot uses, ConfigError for RestoreOptions that do not fit the snapshot,
  /// KvmError when KVM refuses the state.
  static std::unique_ptr<Vm> restore(const std::string& dir, const RestoreOptions& options);

  /// Freezes this running VM into an image that any number of children start from (prepare()
  /// + launch()), and keeps this VM running on that image. As for snapshot(): the vCPUs are
  /// paused, the virtio devices quiesced (vsock connections stay; each child takes over those
  /// `options` carries and resets the rest), and the machine and every device captured. Guest memory is frozen
  /// without copying the RAM: a booted VM's own memfd becomes the image's base; a VM that was
  /// itself started from an image adds one overlay layer holding only the pages it has written
  /// (found in /proc/self/pagemap). Then this VM is re-mapped copy-on-write over the new image
  /// at the same host addresses and resumes: nothing it writes afterwards reaches the image or
  /// any child. The image starts out knowing what this VM's images learned
  /// (VmImage::first_touches() and how many VMs taught it): those of the last image frozen
  /// from this VM while that image lives, else those of the image this VM was made from; a
  /// booted VM's first image knows nothing. The guest's layout is the same, so the pages a
  /// first exec touches mostly are too, and a wrong page costs only memory and time.
  /// Throws InvalidStateError when the VM was not started or has stopped,
  /// GuestMemoryError when the host refuses the memfd or the mappings, KvmError.
  std::shared_ptr<const VmImage> freeze(const CaptureOptions& options = {});
  /// For a VM made from a capture (restore(), launch()): the host end of the vsock connection
  /// to `guest_port` that the capture carried (CaptureOptions::carry_vsock), as a connected
  /// Unix stream socket descriptor the caller now owns and must close, with the capture's tag;
  /// the guest's socket is the one the captured VM's guest had, mid-conversation. fd -1 when
  /// there is none, it could not be carried, or it was taken already. Call after launch().
  TakenVsockConnection take_vsock_connection(uint32_t guest_port);
  /// Builds a VM for `image` without starting it: the expensive KVM part (VM, memory slots over
  /// the image mapped copy-on-write, irqchip, PIT, devices, vCPUs), the vCPU state that does not
  /// move with time, the virtio devices restored and running (their interrupts held until
  /// launch()), and the vCPU threads made and parked, which a pool can do ahead of time. The image-independent part of it comes from
  /// the shell pool when a shell of the image's shape is ready (forkvm/shell_pool.hpp;
  /// build_phases().from_shell), else it is built here. launch() restores and starts it. `options` as
  /// for restore() (verify_memory is ignored: an image was verified when it was opened). Checks
  /// that the host CPU has every feature the image uses (SnapshotError naming the missing
  /// ones). Throws ConfigError, SnapshotError, GuestMemoryError, KvmError.
  static std::unique_ptr<Vm> prepare(std::shared_ptr<const VmImage> image,
                                     const RestoreOptions& options);
  /// Restores the rest of the image's vCPU, VM and device state into a VM made by prepare()
  /// (what moves with time: TSCs, PIT, kvmclock; a LAPIC counting on host time, and what must
  /// follow it: events, IOAPIC, the legacy devices), opens the
  /// virtio interrupt lines and starts its vCPUs. Once per prepared VM (InvalidStateError otherwise). Throws SnapshotError/KvmError
  /// when KVM refuses the state; the VM is then unusable (destroy it).
  void launch();
  /// prepare() then launch().
  static std::unique_ptr<Vm> restore(std::shared_ptr<const VmImage> image,
                                     const RestoreOptions& options);
  /// The phases of prepare() and launch() (zero for a booted VM).
  VmBuildPhases build_phases() const;
  /// How much of the host's memory this VM's RAM uses right now (see VmMemoryUsage).
  VmMemoryUsage memory_usage() const;
  /// KVM's counters for this VM's vCPUs (see KvmCounters); a few preads, never blocks the
  /// vCPUs.
  KvmCounters kvm_counters() const;
  /// The huge pages behind this VM's RAM right now (see VmHugePages). Reads /proc/self/smaps:
  /// milliseconds, not for a hot path.
  VmHugePages huge_pages() const;
  /// The pages of RAM this VM has touched since it was started (see TouchedMemory). Throws
  /// GuestMemoryError when /proc/self/pagemap cannot be read.
  TouchedMemory touched_memory() const;
  /// For a VM made from an image (prepare()), once its guest's first exec has ended: while the
  /// image is still learning its first touches (VmImage::first_touches(): from its first three
  /// VMs to tell), reads this VM's touched_memory() and adds it there. Returns whether that
  /// added pages (false without reading anything once the image has learned). Throws as
  /// touched_memory().
  bool teach_first_touches() const;
  /// For a VM from prepare(), before launch(): copies the `written` pages of `touched` (taken
  /// from another VM of the same image) into this VM's RAM and maps the `read` ones, so that
  /// its guest's first touches of them cost no host page fault; then, with `stage2` and where
  /// KVM can (KVM_PRE_FAULT_MEMORY: Linux 6.10+ with nested paging), maps all of them into the
  /// VM's NPT/EPT tables too, so they cost no nested page fault either. Throws InvalidStateError
  /// after launch(), GuestMemoryError when the host refuses the pages (e.g. ENOMEM); a KVM that
  /// cannot map ahead is not an error (VmPrefault::stage2_unavailable says why).
  VmPrefault prefault_memory(const TouchedMemory& touched, bool stage2 = true);

  /// For a VM restored or forked from an image whose machine has a net device: {the MAC the
  /// guest's driver holds (the one the snapshot's device announced; Linux reads it once, at
  /// probe), this VM's own NIC MAC} when the two differ, so that the guest can be told to move
  /// its interface over (GuestIdentity::mac in agent_client.hpp). nullopt for a VM without a net
  /// device, a booted VM, or a restored one that kept the MAC.
  std::optional<std::pair<std::array<uint8_t, 6>, std::array<uint8_t, 6>>> net_mac_change() const;

  /// Time spent in create() (KVM setup and loading the images) or restore().
  std::chrono::nanoseconds build_time() const;
  /// Time from start() to the agent's ready signal, once it came.
  std::optional<std::chrono::nanoseconds> start_to_ready() const;
  /// The last few KiB of console output.
  std::string console_tail() const;
  /// Console output dropped because VmConfig::console (or RestoreOptions::console) took it
  /// slower than the guest wrote it (see VmConfig::console).
  uint64_t console_bytes_dropped() const;
  /// Queues bytes for the guest's serial console (the UART's 64-byte receive FIFO). Returns
  /// how many were taken; 0 while the FIFO is full, so callers retry the rest later. Safe from
  /// any thread.
  size_t send_console_input(std::string_view bytes);
  /// Port and MMIO accesses that no device claimed.
  uint64_t unmapped_accesses() const;
  /// Where the guest is, as text for an error message (a boot that never signals ready, a
  /// request that goes unanswered): whether it signalled ready and when, or else whether it
  /// wrote anything to its console; then per vCPU its mode and registers (RIP, RSP, CR0-CR4,
  /// EFER, CS, GDT/IDT), pending events, KVM_RUN and exit counts and its last exits, sampled
  /// twice 100 ms apart so that a guest stuck on one instruction, one looping and a slow one
  /// can be told apart. Parks the vCPUs briefly for each sample, then lets them run again
  /// (unless pause() holds them). Several lines, no trailing newline.
  std::string progress_report();

  /// Internal (vmm/vm_impl.hpp): the machine, and a VM shell of the pool (vmm/shell_pool.hpp).
  struct Impl;

 private:
  explicit Vm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace forkvm
