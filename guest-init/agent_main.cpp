// forkvm-agent: the guest's PID 1. It mounts the basic filesystems, reads its orders from the
// `forkvm.*` keys of the kernel command line (agent_config.hpp), prints
//   forkvm-agent: ready cpus=<online CPUs> mem_total_kib=<MemTotal>
// and writes kAgentReady to the boot-signal port, then powers off, runs a shell, runs a
// forkvm.run command, or idles. It never returns from main: every end is a reset (power.hpp).
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "guest-init/agent_config.hpp"
#include "guest-init/agent_error.hpp"
#include "guest-init/boot_port.hpp"
#include "guest-init/children.hpp"
#include "guest-init/console.hpp"
#include "guest-init/cpu_list.hpp"
#include "guest-init/exit_status.hpp"
#include "guest-init/meminfo.hpp"
#include "guest-init/mounts.hpp"
#include "guest-init/power.hpp"
#include "guest-init/read_file.hpp"

namespace forkvm {
namespace {

constexpr size_t kMaxShownCommand = 160;

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : " ") + item;
  return out;
}

std::string read_or_throw(const char* path) {
  auto text = read_file(path);
  if (!text) throw_errno(FatalReason::kSystemInfo, std::string("read ") + path);
  return *text;
}

void prepare_system() {
  enable_boot_port();
  block_agent_signals();
  const MountReport mounts = mount_filesystems();
  setup_console();
  std::string line = "mounted " + join(mounts.mounted);
  if (!mounts.already_mounted.empty()) {
    line += " (already mounted: " + join(mounts.already_mounted) + ")";
  }
  say(line);
  for (const auto& warning : mounts.warnings) say("warning: " + warning);
  ::setenv("PATH", "/bin:/usr/bin:/sbin:/usr/sbin", 1);
  ::setenv("HOME", "/root", 1);
  ::setenv("TERM", "linux", 0);  // the kernel passes TERM=linux; keep a value it chose
  if (::chdir("/") != 0) throw_errno(FatalReason::kMount, "chdir /");
}

void announce_ready() {
  const auto cpus = count_cpu_list(read_or_throw("/sys/devices/system/cpu/online"));
  if (!cpus || *cpus == 0) {
    throw AgentError(FatalReason::kSystemInfo, "cannot parse /sys/devices/system/cpu/online");
  }
  const auto mem_kib = meminfo_kib(read_or_throw("/proc/meminfo"), "MemTotal");
  if (!mem_kib) throw AgentError(FatalReason::kSystemInfo, "no MemTotal in /proc/meminfo");
  say("ready cpus=" + std::to_string(*cpus) + " mem_total_kib=" + std::to_string(*mem_kib));
  send_boot_signal(BootSignal::kAgentReady, 0);
}

[[noreturn]] void run_command_and_power_off(const std::string& command) {
  say("running forkvm.run: " + printable(command, kMaxShownCommand));
  const int status = wait_for_child(spawn_command(command));
  const uint32_t code = exit_status_from_wait(status);
  say("forkvm.run exited with status " + std::to_string(code));
  power_off(code);
}

[[noreturn]] void shell_and_power_off() {
  const std::string tty = console_tty_path();
  say("starting /bin/sh on " + tty + " (exit or poweroff to stop the VM)");
  const uint32_t code = exit_status_from_wait(wait_for_child(spawn_shell(tty)));
  say("shell exited with status " + std::to_string(code));
  power_off(code);
}

[[noreturn]] void run_agent() {
  say("starting (pid 1)");
  prepare_system();
  const AgentConfig config = parse_agent_config(read_or_throw("/proc/cmdline"));
  for (const auto& key : config.unknown_keys) say("warning: ignoring unknown key " + key);
  announce_ready();
  if (config.run_command) run_command_and_power_off(*config.run_command);
  switch (config.after_ready) {
    case AfterReady::kShell:
      shell_and_power_off();
    case AfterReady::kIdle:
      say("idle: reaping children");
      idle_forever();
    case AfterReady::kPowerOff:
      break;
  }
  power_off(0);
}

[[noreturn]] void on_terminate() noexcept {
  fatal(FatalReason::kUnknown, "std::terminate (uncaught exception or noexcept violation)");
}

}  // namespace
}  // namespace forkvm

int main() {
  using namespace forkvm;
  if (::getpid() != 1) {
    // Refuse to run anywhere else: it would mount over /dev and reset the machine.
    std::fputs("forkvm-agent: must run as PID 1 in a forkvm guest; refusing to start\n", stderr);
    return EXIT_FAILURE;
  }
  install_crash_handlers();
  std::set_terminate(on_terminate);
  try {
    run_agent();
  } catch (const AgentConfigError& e) {
    fatal(FatalReason::kConfig, e.what());
  } catch (const AgentError& e) {
    fatal(e.reason(), e.what());
  } catch (const std::exception& e) {
    fatal(FatalReason::kUnknown, e.what());
  } catch (...) {
    fatal(FatalReason::kUnknown, "unknown exception");
  }
}
