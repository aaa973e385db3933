// The command line of `forkvm run` (parsed without touching KVM, so usage errors are cheap and
// testable).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "forkvm/sandbox.hpp"
#include "forkvm/vm.hpp"
#include "tools/cli/egress_options.hpp"

namespace forkvm::cli {

/// Everything `forkvm run` was asked to do.
struct RunOptions {
  std::string kernel;     ///< empty: the built-in image
  std::string initramfs;  ///< empty: the built-in one (with the built-in kernel)
  uint32_t vcpus = 1;
  uint64_t memory_mib = 256;
  std::vector<std::string> argv;                ///< the command (from ARGV or the plan)
  std::map<std::string, std::string> env;       ///< plan env overridden by --env
  std::string cwd;                              ///< --cwd, else the plan's working dir
  std::optional<std::chrono::seconds> timeout;  ///< --timeout: the command's limit
  std::chrono::seconds boot_timeout{300};       ///< --boot-timeout
  bool json = false;                            ///< --json
  std::string launch_plan;                      ///< --launch-plan FILE, if given
  /// --snapshot DIR: run in a fork of this snapshot instead of booting (the machine, image
  /// and its state come from the snapshot).
  std::string snapshot;
  /// --disk: virtio-blk disks, /dev/vda first (after the root filesystem's disk).
  std::vector<DiskConfig> disks;
  /// --rootfs: an image path or "minimal"; nullopt: the built-in root filesystem with the
  /// built-in kernel, none with --kernel (rootfs_option.hpp).
  std::optional<std::string> rootfs;
  /// --add-dir: host directories mounted in the guest (rw ones copied back after the command).
  std::vector<HostDir> add_dirs;
  /// --allow-host, --deny-host (rules in the order given) and --secret.
  EgressPolicy egress;
  /// --egress-log FILE: every proxied request as a JSON line (appended).
  std::string egress_log;
  /// -p HOSTPORT:GUESTPORT, in order.
  std::vector<PublishedPort> published;
  /// --net: a virtio-net NIC (net_spec.hpp); with --snapshot, the fork's.
  std::optional<NetConfig> net;
};

/// The usage text of `forkvm run`.
extern const char* const kRunUsage;

/// Parses `forkvm run ARGS...` (without "forkvm run") and, with --launch-plan, reads the plan.
/// Throws UsageError (an empty message means --help) or LaunchPlanError.
RunOptions parse_run_args(std::span<char* const> args);

}  // namespace forkvm::cli
