// forkvm-agent: the guest's PID 1. It mounts the basic filesystems, reads its orders from the
// `forkvm.*` keys of the kernel command line (agent_config.hpp), moves into the root disk when
// forkvm.root names one (root_switch.hpp), prints
//   forkvm-agent: ready cpus=<online CPUs> mem_total_kib=<MemTotal>
// and writes kAgentReady to the boot-signal port, then powers off, runs a shell, runs a
// forkvm.run command, idles, or serves the agent protocol (guest-init/agent/). The vsock
// listeners are opened before kAgentReady, so a host may connect as soon as it sees it; so are
// the port relay's (guest_relay.hpp: the egress proxy on 127.0.0.1:3128 and the port-forward
// vsock port), whose thread starts with the server. It never returns from main: every end is a
// reset (power.hpp).
#include <sys/types.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "contract/net_ports.hpp"
#include "contract/protocol/messages.hpp"
#include "guest-init/agent/server.hpp"
#include "guest-init/agent_config.hpp"
#include "guest-init/agent_error.hpp"
#include "guest-init/boot_port.hpp"
#include "guest-init/children.hpp"
#include "guest-init/console.hpp"
#include "guest-init/cpu_list.hpp"
#include "guest-init/exit_status.hpp"
#include "guest-init/guest_relay.hpp"
#include "guest-init/loopback_up.hpp"
#include "guest-init/meminfo.hpp"
#include "guest-init/mounts.hpp"
#include "guest-init/power.hpp"
#include "guest-init/read_file.hpp"
#include "guest-init/root_switch.hpp"
#include "guest-init/vsock_echo.hpp"
#include "guest-init/vsock_listen.hpp"

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
  // Debian's default PATH (a root disk puts pip's scripts in /usr/local/bin); harmless for the
  // busybox-only initramfs.
  ::setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
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
  drain_console();  // the host prints its own "agent ready" on the signal: after this line
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

// Every exec reaches the network through the agent's egress proxy (there is no NIC); a
// request's env or the persistent env file overrides these like any base variable.
void add_proxy_env(agent::ServerOptions& options) {
  const std::string proxy = "http://127.0.0.1:" + std::to_string(net::kGuestProxyPort);
  const std::string no_proxy = "localhost,127.0.0.1,::1";
  for (const char* key : {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"}) {
    options.base_env.emplace_back(key, proxy);
  }
  for (const char* key : {"NO_PROXY", "no_proxy"}) options.base_env.emplace_back(key, no_proxy);
}

// Serves the agent protocol until a power-off request (busybox poweroff/reboot/halt send
// SIGUSR2/SIGTERM/SIGUSR1 to PID 1). The server reaps every child, orphans included.
[[noreturn]] void serve_forever(AgentSockets sockets, RelayListeners relay_listeners) {
  agent::ServerOptions options;  // state in /run/forkvm (a tmpfs, mounts.cpp)
  add_proxy_env(options);
  options.extra_signals = {SIGTERM, SIGUSR1, SIGUSR2};
  // Every thread blocks SIGCHLD (the relay below inherits the mask), so an idle guest has no
  // periodic wake-up from the agent: it costs host CPU for every idle sandbox and fork.
  options.max_idle_poll_ms = -1;
  options.on_signal = [](int signo) {
    say(std::string("power-off requested by signal ") + std::to_string(signo));
    power_off(0);
  };
  options.log = [](std::string_view line) { say("server: " + std::string(line)); };
  agent::Server server(sockets.agent.release(), sockets.metadata.release(), std::move(options));
  // After the server's constructor: the relay thread inherits this thread's signal mask, with
  // SIGCHLD and the power-off signals blocked, so they all stay with the server's signalfd.
  std::unique_ptr<relay::PortRelay> port_relay;
  try {
    port_relay = start_port_relay(std::move(relay_listeners));
    if (port_relay) {
      say("relaying egress from 127.0.0.1:" + std::to_string(net::kGuestProxyPort) +
          " to vsock port " + std::to_string(net::kEgressVsockPort) +
          " and port forwards from vsock port " + std::to_string(net::kForwardVsockPort));
    }
  } catch (const std::exception& e) {
    say(std::string("warning: no port relay: ") + e.what());
  }
  say("serving the agent protocol on vsock ports " + std::to_string(protocol::kAgentPort) +
      " and " + std::to_string(protocol::kMetadataPort));
  server.run();  // returns only if stop() is called, which nothing does
  throw AgentError(FatalReason::kNoAgentServer, "the agent server stopped");
}

[[noreturn]] void run_agent() {
  say("starting (pid 1)");
  prepare_system();
  const AgentConfig config = parse_agent_config(read_or_throw("/proc/cmdline"));
  for (const auto& key : config.unknown_keys) say("warning: ignoring unknown key " + key);
  // Before the listeners and the ready signal: every exec and file operation sees the disk.
  if (config.root_disk) say(switch_root_to_disk(*config.root_disk, config.root_upper_disk));
  // Before any listener: the relay's proxy listener and its dials use 127.0.0.1.
  if (const auto why = bring_loopback_up()) say("warning: loopback not up: " + *why);
  // Listening before kAgentReady: the host may connect the moment it sees the signal.
  std::string no_vsock;
  std::optional<AgentSockets> sockets = listen_agent_sockets(no_vsock);
  if (!sockets) {
    if (config.after_ready == AfterReady::kServe && !config.run_command) {
      throw AgentError(FatalReason::kNoAgentServer,
                       "forkvm.after_ready=serve needs vsock: " + no_vsock);
    }
    say("no agent server: " + no_vsock);
  }
  // The relay serves only with the agent server (serve, or idle with vsock); its listeners
  // are open before kAgentReady like the server's, and its thread starts with the server.
  RelayListeners relay_listeners;
  const bool will_serve = sockets && !config.run_command &&
                          (config.after_ready == AfterReady::kServe ||
                           config.after_ready == AfterReady::kIdle);
  if (will_serve) {
    std::vector<std::string> warnings;
    relay_listeners = open_relay_listeners(warnings);
    for (const auto& warning : warnings) say("warning: " + warning);
  }
  announce_ready();
  if (config.after_ready != AfterReady::kServe && config.after_ready != AfterReady::kIdle) {
    sockets.reset();  // nobody would accept: a connecting host gets a reset, not a hang
  }
  if (config.run_command) {
    sockets.reset();
    relay_listeners = {};
    run_command_and_power_off(*config.run_command);
  }
  switch (config.after_ready) {
    case AfterReady::kShell:
      shell_and_power_off();
    case AfterReady::kServe:
      serve_forever(std::move(*sockets), std::move(relay_listeners));
    case AfterReady::kIdle:
      if (sockets) serve_forever(std::move(*sockets), std::move(relay_listeners));
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

int main(int argc, char** argv) {
  using namespace forkvm;
  if (argc == 3 && std::string_view(argv[1]) == "--vsock-echo") {
    // A second role for forkvm-bench's reference measurement (vsock_echo.hpp); any PID.
    const unsigned long port = std::strtoul(argv[2], nullptr, 10);
    if (port == 0 || port > 0xFFFFFFFEul) {
      std::fputs("forkvm-agent: --vsock-echo wants a port in [1, 2^32-2]\n", stderr);
      return EXIT_FAILURE;
    }
    return run_vsock_echo(static_cast<uint32_t>(port));
  }
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
