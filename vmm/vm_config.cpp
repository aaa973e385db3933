// Validation of a VmConfig and the default kernel command line: everything that can be checked
// before KVM is touched, so bad input fails fast with a clear message and nothing to clean up.
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <string>

#include "base/text.hpp"
#include "contract/root_disk.hpp"
#include "devices/virtio/block/block_device.hpp"
#include "devices/virtio/net/net_device.hpp"
#include "devices/virtio/net/tap.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/vm.hpp"
#include "memory/layout.hpp"
#include "vmm/virtio_mmio_slots.hpp"
#include "vmm/vm_impl.hpp"

namespace forkvm {
namespace {

void check_readable(const std::string& path, const char* what) {
  if (path.empty()) throw ImageError(path, std::string(what) + " path is empty");
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    throw ImageError(path, std::string("cannot read ") + what + ": " + errno_text(errno));
  }
  f.seekg(0, std::ios::end);
  if (f.tellg() <= 0) throw ImageError(path, std::string(what) + " is empty");
}

void check_vsock(const VsockConfig& vsock) {
  // 0 (hypervisor), 1 (local) and 2 (host) are reserved; 2^32 - 1 is VMADDR_CID_ANY, and the
  // Linux driver reads the CID as 32 bits (virtio 1.2 §5.10.4 allows 64 but Linux uses 32).
  constexpr uint64_t kFirstGuestCid = 3;
  constexpr uint64_t kCidAny = 0xffffffffull;
  if (vsock.guest_cid < kFirstGuestCid || vsock.guest_cid >= kCidAny) {
    throw ConfigError("vsock guest CID must be between 3 and " + std::to_string(kCidAny - 1) +
                      ", got " + std::to_string(vsock.guest_cid));
  }
  if (vsock.uds_path.empty()) throw ConfigError("vsock Unix socket path is empty");
  // The path and its NUL must fit in sun_path.
  constexpr size_t kSunPath = sizeof(sockaddr_un::sun_path);
  if (vsock.uds_path.size() >= kSunPath) {
    throw ConfigError("vsock Unix socket path of " + std::to_string(vsock.uds_path.size()) +
                      " bytes is too long (at most " + std::to_string(kSunPath - 1) + "): " +
                      vsock.uds_path);
  }
}

void check_net(const NetConfig& net) {
  const bool has_tap = !net.tap.empty();
  const bool has_fd = net.fd >= 0;
  if (has_tap == has_fd) {
    throw ConfigError(has_tap ? "net: give a TAP name or a descriptor, not both (tap '" + net.tap +
                                    "', fd " + std::to_string(net.fd) + ")"
                              : "net: give a TAP name or a descriptor (fd " +
                                    std::to_string(net.fd) + ")");
  }
  if (!has_tap && !net.netns.empty()) {
    throw ConfigError("net: a network namespace (" + net.netns +
                      ") applies to a TAP opened by name only, not to a descriptor");
  }
  if (has_tap) {
    if (const std::string why = tap_name_problem(net.tap); !why.empty()) {
      throw ConfigError("net: " + why);
    }
  }
  if (const std::string why = NetDevice::mac_problem(net.mac); !why.empty()) {
    throw ConfigError("net: " + why);
  }
}

/// The disk checks that need no file: count, paths, ids (length, characters, uniqueness).
/// The images themselves are opened (and locked) when the VM is built.
void check_disks(const VmConfig& config) {
  const size_t others = (config.vsock ? 1 : 0) + (config.net ? 1 : 0);
  const size_t slots = config.disks.size() + others;
  if (slots > layout::kMaxVirtioDevices) {
    const char* beside = config.vsock && config.net ? "the vsock and net devices"
                         : config.vsock             ? "the vsock device"
                         : config.net               ? "the net device"
                                                    : "nothing else";
    throw ConfigError(std::to_string(config.disks.size()) + " disks are too many: at most " +
                      std::to_string(layout::kMaxVirtioDevices - others) + " fit beside " + beside);
  }
  std::set<std::string> ids;
  for (size_t i = 0; i < config.disks.size(); ++i) {
    const DiskConfig& d = config.disks[i];
    const std::string what = "disk " + std::to_string(i);
    if (d.path.empty()) throw ConfigError(what + ": the image path is empty");
    if (d.read_only && d.copy_on_write) {
      throw ConfigError(what + " (" + d.path + "): read_only and copy_on_write exclude each other");
    }
    const std::string id = disk_id(d, i);
    if (const std::string why = BlockDevice::id_problem(id); !why.empty()) {
      throw ConfigError(what + ": " + why);
    }
    if (!ids.insert(id).second) throw ConfigError(what + ": id '" + id + "' is used twice");
  }
}

}  // namespace

uint64_t host_memory_limit() {
  struct sysinfo si {};
  uint64_t limit = sysinfo(&si) == 0 ? uint64_t{si.totalram} * si.mem_unit : UINT64_MAX;
  struct rlimit rl {};
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    limit = std::min<uint64_t>(limit, rl.rlim_cur);
  }
  return limit;
}

void check_fits_host(uint64_t memory_mib, const std::string& what, bool snapshot) {
  const uint64_t host = host_memory_limit();
  if (memory_mib <= host / layout::kMiB) return;
  const std::string msg = what + "memory of " + std::to_string(memory_mib) +
                          " MiB is more than this host can give (" +
                          std::to_string(host / layout::kMiB) + " MiB)";
  if (snapshot) throw SnapshotError(msg);
  throw ConfigError(msg);
}

std::string disk_id(const DiskConfig& disk, size_t index) {
  return disk.id.empty() ? "disk" + std::to_string(index) : disk.id;
}

std::string default_cmdline(bool zero_freed_memory) {
  // console=ttyS0: the 16550 on COM1 is the console. reboot=k: a guest reboot goes through
  // the i8042 reset line, which stops the VM. panic=1: a panic reboots (= stops) after 1 s
  // instead of hanging. i8042.*: skip AUX/mux/PnP probing of the minimal 8042. nomodule and
  // cryptomgr.notests: nothing to load, no self-tests at boot. init_on_free=1: the kernel zeroes
  // every page it frees, so a secret removed in the guest (a tmpfs file unlinked, a process's
  // memory released) is not left in free pages that a snapshot or fork copies to others (the
  // guest kernel has the parameter built in since 5.3; it costs a clear of free RAM at boot and
  // a clear per freed page: VmConfig::zero_freed_memory says what that is).
  // tsc=nowatchdog: kvm-clock keeps the time; without it the kernel checks the TSC against
  // kvm-clock every 0.5 s, a timer interrupt in every idle VM, and a restored or forked VM whose
  // TSC and kvm-clock moved apart prints half a KiB on the serial console (one exit per byte)
  // when it marks the TSC unstable (seen in kvm-lab, on a forked child's first exec).
  std::string cmdline = "console=ttyS0 reboot=k panic=1 nomodule cryptomgr.notests "
                        "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc=nowatchdog";
  if (zero_freed_memory) cmdline += " init_on_free=1";
  return cmdline;
}

std::string effective_cmdline(const VmConfig& config) {
  std::string cmdline = virtio_mmio_cmdline(config);
  if (!cmdline.empty()) cmdline += ' ';
  cmdline += config.cmdline.empty() ? default_cmdline(config.zero_freed_memory) : config.cmdline;
  if (!config.extra_cmdline.empty()) cmdline += " " + config.extra_cmdline;
  return cmdline;
}

void validate_vsock(const VsockConfig& vsock) { check_vsock(vsock); }

void validate_net(const NetConfig& net) { check_net(net); }

void validate(const VmConfig& config) {
  if (config.vcpus == 0 || config.vcpus > layout::kMaxVcpus) {
    throw ConfigError("vcpus must be between 1 and " + std::to_string(layout::kMaxVcpus) +
                      ", got " + std::to_string(config.vcpus));
  }
  const uint64_t min_mib = layout::kMinMemory / layout::kMiB;
  if (config.memory_mib < min_mib) {
    throw ConfigError("memory must be at least " + std::to_string(min_mib) + " MiB, got " +
                      std::to_string(config.memory_mib) + " MiB");
  }
  check_fits_host(config.memory_mib, "", false);
  if (config.ram_backing != RamBacking::kMemfd && config.ram_backing != RamBacking::kMemfdHugePages &&
      config.ram_backing != RamBacking::kAnonymous) {
    throw ConfigError("ram_backing " + std::to_string(static_cast<int>(config.ram_backing)) +
                      " is not a RamBacking (memfd, memfd-huge or anonymous)");
  }
  // Before the command line, which has one entry per disk: too many disks are named as such.
  check_disks(config);
  // The exact limit depends on the kernel (its setup header's cmdline_size); this is the space
  // forkvm reserves, checked here so an absurd line fails before anything is opened.
  const std::string cmdline = effective_cmdline(config);
  if (cmdline.size() + 1 > layout::kCmdlineMaxSize) {
    throw ConfigError("kernel command line of " + std::to_string(cmdline.size()) +
                      " bytes is too long (at most " + std::to_string(layout::kCmdlineMaxSize - 1) +
                      ")");
  }
  if (config.vsock) check_vsock(*config.vsock);
  if (config.net) check_net(*config.net);
  check_readable(config.kernel, "kernel");
  if (!config.initramfs.empty()) check_readable(config.initramfs, "initramfs");
}

std::string_view to_string(RamBacking backing) {
  switch (backing) {
    case RamBacking::kMemfd: return "memfd";
    case RamBacking::kMemfdHugePages: return "memfd-huge";
    case RamBacking::kAnonymous: return "anonymous";
  }
  return "unknown";
}

std::string_view to_string(StopReason reason) {
  switch (reason) {
    case StopReason::kPowerOff: return "poweroff";
    case StopReason::kGuestReset: return "guest-reset";
    case StopReason::kAgentFatal: return "agent-fatal";
    case StopReason::kTripleFault: return "triple-fault";
    case StopReason::kVcpuError: return "vcpu-error";
    case StopReason::kHostStop: return "host-stop";
    case StopReason::kDeviceError: return "device-error";
  }
  return "unknown";
}

void attach_root_filesystem(VmConfig& config, const std::string& image) {
  if (image.empty()) return;
  // First, so that it is /dev/vda whatever else is attached; validate() refuses another disk
  // that uses the id.
  DiskConfig root;
  root.path = image;
  root.read_only = true;
  root.id = kRootDiskId;
  config.disks.insert(config.disks.begin(), std::move(root));
  config.extra_cmdline += config.extra_cmdline.empty() ? "" : " ";
  config.extra_cmdline += std::string(kRootCmdlineKey) + "=" + kRootDiskId;
}

}  // namespace forkvm
