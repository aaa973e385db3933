#include "bench/guest_script.hpp"

#include <chrono>
#include <fstream>
#include <mutex>

#include "bench/qemu_reference.hpp"
#include "contract/root_disk.hpp"
#include "contract/run_command.hpp"
#include "forkvm/errors.hpp"

namespace forkvm::bench {
namespace {

/// The disk serial the guest's command looks for.
constexpr const char* kScriptSerial = "script";

/// forkvm.run=...: the setup step, then python3 on the disk whose serial is "script".
std::string script_cmdline(const std::string& setup) {
  std::string command = setup.empty() ? "" : "{ " + setup + "; } && ";
  command += std::string("for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = ") + kScriptSerial +
             " ] && exec python3 /dev/${d##*/}; done; exit 99";
  return "forkvm.run=" + encode_run_command(command);
}

std::string tail_of(const std::string& console) {
  return console.substr(console.size() > 600 ? console.size() - 600 : 0);
}

}  // namespace

void write_script_disk(const std::string& path, std::string python) {
  python.resize((python.size() + 4095) / 4096 * 4096, '\n');  // whole sectors of valid Python
  std::ofstream out(path, std::ios::binary);
  out << python;
  if (!out.flush()) throw Error("cannot write " + path);
}

std::optional<std::string> marker_line(const std::string& console, const std::string& marker) {
  const auto at = console.find(marker);
  if (at == std::string::npos) return std::nullopt;
  const auto end = console.find('\n', at);
  if (end == std::string::npos) return std::nullopt;
  std::string line = console.substr(at + marker.size(), end - at - marker.size());
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::optional<std::string> run_in_forkvm(const ScriptGuest& g, VmConfig c, std::string* why) {
  c.kernel = g.image_dir + "/bzImage";
  c.initramfs = g.image_dir + "/initramfs.cpio.gz";
  c.vcpus = g.vcpus;
  c.memory_mib = g.memory_mib;
  DiskConfig script;
  script.path = g.script_disk;
  script.read_only = true;
  script.id = kScriptSerial;
  c.disks.push_back(script);
  c.extra_cmdline = script_cmdline(g.setup);
  attach_root_filesystem(c, g.rootfs);
  std::mutex mu;
  std::string console;
  c.console = [&](std::string_view s) {
    std::lock_guard lock(mu);
    console.append(s);
    if (console.size() > (1u << 20)) console.erase(0, console.size() - 4096);
  };
  try {
    auto vm = Vm::create(c);
    vm->start();
    const auto end = vm->wait(std::chrono::milliseconds(static_cast<long>(g.timeout_s * 1000)));
    std::lock_guard lock(mu);
    if (auto r = marker_line(console, g.marker)) return r;
    *why = std::string(end ? "the guest stopped" : "timed out") +
           " without a result; console tail: " + tail_of(console);
  } catch (const Error& e) {
    *why = e.what();
  }
  return std::nullopt;
}

std::optional<std::string> run_in_qemu(const ScriptGuest& g, const std::vector<std::string>& prefix,
                                       const std::vector<std::string>& devices, std::string* why) {
  std::vector<std::string> argv = prefix;
  // acpi=off: the guest kernel has no ACPI, so QEMU must announce its virtio-mmio transports
  // on the command line (auto-kernel-cmdline), as forkvm does.
  const std::vector<std::string> common = {
      "qemu-system-x86_64", "-M", "microvm,rtc=off,acpi=off", "-accel", "kvm", "-cpu", "host",
      "-smp", std::to_string(g.vcpus), "-m", std::to_string(g.memory_mib), "-nodefaults",
      "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
      "-kernel", g.image_dir + "/bzImage", "-initrd", g.image_dir + "/initramfs.cpio.gz",
      "-drive", "id=root,file=" + g.rootfs + ",format=raw,if=none,readonly=on",
      "-device", std::string("virtio-blk-device,drive=root,serial=") + kRootDiskId,
      "-drive", "id=script,file=" + g.script_disk + ",format=raw,if=none,readonly=on",
      "-device", std::string("virtio-blk-device,drive=script,serial=") + kScriptSerial};
  argv.insert(argv.end(), common.begin(), common.end());
  argv.insert(argv.end(), devices.begin(), devices.end());
  argv.push_back("-append");
  argv.push_back("console=ttyS0 reboot=t panic=1 " + std::string(kRootCmdlineKey) + "=" +
                 kRootDiskId + " " + script_cmdline(g.setup));
  const QemuRun run = run_qemu(argv, [&](const std::string& console) {
    return marker_line(console, g.marker).has_value();
  }, g.timeout_s, why);
  if (auto r = marker_line(run.console, g.marker)) return r;
  if (why->empty()) *why = "no result on QEMU's console; its tail: " + tail_of(run.console);
  return std::nullopt;
}

}  // namespace forkvm::bench
