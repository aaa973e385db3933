// A python3 workload that the guest runs at boot without the agent, for the benchmarks that
// compare forkvm with QEMU on the same images: the agent's forkvm.run starts it from a
// read-only disk with serial "script" (the kernel command line is too short for the script
// itself), after an optional shell setup step, and the script prints one result line on the
// console, "<marker><result>". The same kernel, initramfs, Debian root filesystem and script
// disk boot under forkvm and under QEMU -M microvm with KVM; only the devices under test differ.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "forkvm/vm.hpp"

namespace forkvm::bench {

/// What both VMMs boot.
struct ScriptGuest {
  std::string image_dir;    ///< holds bzImage and initramfs.cpio.gz
  std::string rootfs;       ///< the Debian root filesystem (python3), read-only
  std::string script_disk;  ///< written by write_script_disk()
  std::string setup;        ///< a shell command run before the script ("" none)
  std::string marker;       ///< what starts the result line
  unsigned vcpus = 1;
  unsigned memory_mib = 512;
  double timeout_s = 600;
};

/// Writes `python` to `path`, padded with newlines to whole 4 KiB blocks. Throws Error.
void write_script_disk(const std::string& path, std::string python);

/// The rest of the line after `marker` in `console`, once that line has ended; nullopt before.
std::optional<std::string> marker_line(const std::string& console, const std::string& marker);

/// Boots `g` under forkvm with `config`'s devices under test (its disks and NIC are kept; the
/// kernel, initramfs, shape, root and script disks and command line are set here), waits up to
/// g.timeout_s for the guest to stop, and returns the result line, or nullopt with `why`.
std::optional<std::string> run_in_forkvm(const ScriptGuest& g, VmConfig config, std::string* why);

/// Boots `g` under QEMU -M microvm with KVM, the devices under test given by `devices` (QEMU
/// arguments), QEMU itself started as `prefix` + qemu-system-x86_64 ... (e.g. `ip netns exec
/// NS`). Returns the result line, or nullopt with `why`.
std::optional<std::string> run_in_qemu(const ScriptGuest& g, const std::vector<std::string>& prefix,
                                       const std::vector<std::string>& devices, std::string* why);

}  // namespace forkvm::bench
