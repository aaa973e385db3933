#include "guest-init/agent_config.hpp"

#include "contract/root_disk.hpp"
#include "guest-init/kernel_cmdline.hpp"
#include "guest-init/run_command.hpp"

namespace forkvm {
namespace {

constexpr std::string_view kPrefix = "forkvm.";

const std::string& require_value(const CmdlineParam& p) {
  if (!p.value) throw AgentConfigError(p.key + ": needs a value (" + p.key + "=...)");
  return *p.value;
}

AfterReady parse_after_ready(const CmdlineParam& p) {
  const std::string& v = require_value(p);
  for (AfterReady mode :
       {AfterReady::kPowerOff, AfterReady::kShell, AfterReady::kIdle, AfterReady::kServe}) {
    if (v == to_string(mode)) return mode;
  }
  throw AgentConfigError(p.key + ": unknown value '" + v + "' (want poweroff, shell, idle or serve)");
}

/// A disk serial as the VMM gives it (BlockDevice::id_problem() allows more; the agent accepts
/// only what names a file safely and what forkvm's own ids use).
std::string parse_root_disk(const CmdlineParam& p) {
  const std::string& v = require_value(p);
  if (v.empty() || v.size() > 20) throw AgentConfigError(p.key + ": wants 1-20 characters");
  for (char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) throw AgentConfigError(p.key + ": '" + v + "' has characters outside [A-Za-z0-9._-]");
  }
  return v;
}

}  // namespace

std::string_view to_string(AfterReady mode) {
  switch (mode) {
    case AfterReady::kPowerOff: return "poweroff";
    case AfterReady::kShell: return "shell";
    case AfterReady::kIdle: return "idle";
    case AfterReady::kServe: return "serve";
  }
  return "?";
}

AgentConfig parse_agent_config(std::string_view cmdline) {
  AgentConfig config;
  for (const CmdlineParam& p : parse_kernel_cmdline(cmdline)) {
    if (p.key.rfind(kPrefix, 0) != 0) continue;
    if (p.key == "forkvm.after_ready") {
      config.after_ready = parse_after_ready(p);
    } else if (p.key == "forkvm.run") {
      std::string command = decode_run_command(require_value(p));
      if (command.empty()) throw AgentConfigError("forkvm.run: empty command");
      config.run_command = std::move(command);
    } else if (p.key == kRootCmdlineKey) {
      config.root_disk = parse_root_disk(p);
    } else if (p.key == kRootUpperCmdlineKey) {
      config.root_upper_disk = parse_root_disk(p);
    } else {
      config.unknown_keys.push_back(p.key);
    }
  }
  if (config.root_upper_disk && !config.root_disk) {
    throw AgentConfigError(std::string(kRootUpperCmdlineKey) + " needs " + kRootCmdlineKey);
  }
  return config;
}

}  // namespace forkvm
