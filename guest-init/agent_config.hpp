// What the agent is told to do, read from the `forkvm.*` keys of the kernel command line:
//
//   forkvm.after_ready=poweroff|shell|idle|serve
//                                            what to do once ready (default: poweroff)
//   forkvm.run=<percent-escaped command>     run it with /bin/sh -c, then power off with its
//                                            exit status (overrides after_ready; run_command.hpp)
//   forkvm.root=<disk serial>                the root filesystem: the virtio disk with this serial
//                                            (1-20 of [A-Za-z0-9._-]), mounted read-only under a
//                                            writable overlay in RAM (root_switch.hpp); absent:
//                                            the initramfs stays the root
//   forkvm.root_upper=<disk serial>          with forkvm.root: the overlay's writable layer on
//                                            this ext4 disk instead of RAM
//
// Other keys are not the agent's business and are skipped; unknown `forkvm.*` keys are
// collected so that the agent can warn about them. When a key repeats, the last one wins (as
// with most kernel parameters).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guest-init/agent_config_error.hpp"

namespace forkvm {

/// What the agent does after it has signalled kAgentReady.
enum class AfterReady {
  kPowerOff,  ///< sync and power off with status 0
  kShell,     ///< run /bin/sh on the console, power off with its exit status when it exits
  kIdle,      ///< stay up, reaping children (and serving the protocol if vsock works)
  kServe,     ///< serve the agent protocol forever; fatal if vsock is unavailable
};

/// The agent's configuration.
struct AgentConfig {
  AfterReady after_ready = AfterReady::kPowerOff;  ///< forkvm.after_ready
  std::optional<std::string> run_command;          ///< forkvm.run, decoded
  std::optional<std::string> root_disk;            ///< forkvm.root: a disk serial
  std::optional<std::string> root_upper_disk;      ///< forkvm.root_upper: a disk serial
  std::vector<std::string> unknown_keys;           ///< forkvm.* keys that were ignored
};

/// Reads the configuration from a kernel command line (the contents of /proc/cmdline).
/// Throws AgentConfigError for a known key with a missing or invalid value.
AgentConfig parse_agent_config(std::string_view cmdline);

/// The command-line spelling of `mode` ("poweroff", "shell", "idle", "serve").
std::string_view to_string(AfterReady mode);

}  // namespace forkvm
