#include "guest-init/agent_config.hpp"

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
    } else {
      config.unknown_keys.push_back(p.key);
    }
  }
  return config;
}

}  // namespace forkvm
