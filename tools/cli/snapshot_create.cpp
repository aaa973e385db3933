#include "tools/cli/snapshot_create.hpp"

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "base/text.hpp"
#include "contract/protocol/messages.hpp"
#include "forkvm/agent_client.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/vm.hpp"
#include "tools/cli/args.hpp"
#include "tools/cli/boot_command.hpp"
#include "tools/cli/builtin_image.hpp"
#include "tools/cli/disk_spec.hpp"
#include "tools/cli/rootfs_option.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kCreateUsage =
    "usage: forkvm snapshot create [--vcpus N] [--memory MiB] [--kernel FILE --initramfs FILE]\n"
    "                              [--rootfs IMG|minimal] [--disk PATH:ro[,id=ID]]...\n"
    "                              [--warm-up CMD]... [--no-warm-up] [--timeout S] DIR\n"
    "Boots a template VM (the built-in image unless --kernel/--initramfs; its root filesystem\n"
    "is the built-in Debian one unless --rootfs), with vsock and the agent serving, waits until\n"
    "the agent is ready, connects to it (so that every VM made from the snapshot takes that\n"
    "connection over instead of connecting), writes a snapshot to DIR (which must not exist)\n"
    "and stops the VM.\n"
    "Before the snapshot the agent runs each --warm-up CMD through /bin/sh (default: one `true`),\n"
    "which must exit 0: the files and code a first command needs are then in the guest's page\n"
    "cache and in the agent's memory of every VM made from the snapshot, not read again by each\n"
    "(`--warm-up 'python3 -c pass'` warms an interpreter too). --no-warm-up runs none.\n"
    "Disks must be read-only: the snapshot records each image's path, size and SHA-256, and a\n"
    "restore refuses an image that changed. Restore it with forkvm::Vm::restore, forkvm run\n"
    "--snapshot or forkvm::Template::open. Exit status: 0 written,\n"
    "2 usage, 3 setup (bad config/image, no KVM, DIR exists), 4 the guest failed, 5 timeout.\n";

struct CreateOptions {
  VmConfig vm;
  std::optional<std::string> rootfs;
  std::chrono::seconds timeout{120};
  std::string dir;
  /// Shell commands the agent runs before the snapshot, in order (see kCreateUsage).
  std::vector<std::string> warm_up;
  bool no_warm_up = false;
};

std::optional<CreateOptions> parse_create(std::span<char* const> argv) {
  CreateOptions o;
  o.vm.kernel = builtin_kernel();
  o.vm.initramfs = builtin_initramfs();
  Args args(argv);
  std::vector<std::string> dirs;
  while (args.more()) {
    if (args.peek().size() < 2 || args.peek()[0] != '-') {
      dirs.push_back(args.next_option());
      continue;
    }
    const std::string opt = args.next_option();
    if (opt == "--help" || opt == "-h") return std::nullopt;
    if (opt == "--vcpus") {
      o.vm.vcpus = static_cast<uint32_t>(args.number(opt, 1, 64));
    } else if (opt == "--memory") {
      o.vm.memory_mib = args.number(opt, 16, 1 << 20);
    } else if (opt == "--kernel") {
      o.vm.kernel = args.value(opt);
    } else if (opt == "--initramfs") {
      o.vm.initramfs = args.value(opt);
    } else if (opt == "--rootfs") {
      o.rootfs = parse_rootfs_option(args.value(opt));
    } else if (opt == "--disk") {
      o.vm.disks.push_back(parse_disk_spec(args.value(opt)));
    } else if (opt == "--timeout") {
      o.timeout = std::chrono::seconds(args.number(opt, 1, 86400));
    } else if (opt == "--warm-up") {
      o.warm_up.push_back(args.value(opt));
      if (o.warm_up.back().empty()) throw UsageError("--warm-up needs a command");
    } else if (opt == "--no-warm-up") {
      o.no_warm_up = true;
    } else {
      throw UsageError("unknown option '" + opt + "'");
    }
  }
  if (dirs.size() != 1 || dirs.front().empty()) {
    throw UsageError("create takes one snapshot directory (it must not exist yet)");
  }
  o.dir = dirs.front();
  if (o.no_warm_up && !o.warm_up.empty()) throw UsageError("--warm-up and --no-warm-up conflict");
  if (!o.no_warm_up && o.warm_up.empty()) o.warm_up.push_back("true");
  attach_root_filesystem(o.vm, choose_rootfs(o.rootfs, o.vm.kernel == builtin_kernel(), true,
                                       builtin_rootfs()));
  return o;
}

/// A private directory for the template's vsock socket, removed on every path out.
class SocketDir {
 public:
  SocketDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/forkvm-template-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw Error("mkdtemp " + pattern + " failed");
    path_ = pattern;
  }
  ~SocketDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  SocketDir(const SocketDir&) = delete;
  SocketDir& operator=(const SocketDir&) = delete;
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

/// Connects to the template's agent, retrying while it starts listening (the ready signal comes
/// just before), so that the snapshot carries that connection, quiet, into every VM made from
/// it (CaptureOptions): those then start talking at once instead of connecting. Bounded by
/// `limit`; nullptr when the agent did not answer in time (the snapshot is made without it).
std::unique_ptr<AgentClient> connect_template_agent(const std::string& socket,
                                                    std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  AgentClientOptions ao;
  ao.socket_path = socket;
  ao.vsock_port = protocol::kAgentPort;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= std::chrono::milliseconds(0)) return nullptr;
    ao.connect_timeout = std::min(left, std::chrono::milliseconds(2000));
    try {
      return AgentClient::connect(ao);
    } catch (const AgentUnreachableError&) {
    } catch (const TimeoutError&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

/// Runs the warm-up commands in the template (kCreateUsage), each bounded by `limit`. Throws
/// GuestError naming the command that failed, with its exit status, the tail of its stderr and
/// the console tail of `vm`.
void warm_up(Vm& vm, AgentClient& agent, const std::vector<std::string>& commands,
             std::chrono::seconds limit) {
  ExecOptions eo;
  eo.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(limit);
  eo.max_output_bytes = 64 * 1024;  // warm-up output is not kept
  for (const std::string& command : commands) {
    const ExecResult r = agent.exec_shell(command, eo);
    if (r.ok()) continue;
    const std::string why = r.outcome() + (r.timed_out ? ", the limit is " +
                                                             std::to_string(limit.count()) + " s"
                                                       : std::string());
    const std::string err = r.stderr_data.substr(r.stderr_data.size() - std::min<size_t>(
                                                     r.stderr_data.size(), 400));
    throw GuestError("warm-up command '" + printable(command) + "' failed (" + why + ")" +
                         (err.empty() ? std::string() : ": " + printable(err)),
                     vm.console_tail());
  }
}

int create(const CreateOptions& o) {
  if (std::filesystem::exists(o.dir)) {
    std::cerr << "forkvm snapshot create: " << o.dir << " already exists\n";
    return kExitSetup;
  }
  SocketDir sockets;
  VmConfig c = o.vm;
  c.vsock = VsockConfig{3, sockets.path() + "/vsock.sock"};
  c.extra_cmdline += c.extra_cmdline.empty() ? "" : " ";
  c.extra_cmdline += "forkvm.after_ready=serve";
  std::unique_ptr<Vm> vm;
  try {
    vm = Vm::create(c);
  } catch (const Error& e) {
    std::cerr << "forkvm snapshot create: " << e.what() << "\n";
    return kExitSetup;
  }
  try {
    vm->start();
    if (!vm->wait_ready(o.timeout)) {
      std::cerr << "forkvm snapshot create: the agent was not ready within " << o.timeout.count()
                << " s: " << vm->progress_report() << "\n--- guest console (tail) ---\n"
                << printable_lines(vm->console_tail());
      return kExitTimeout;
    }
    const std::unique_ptr<AgentClient> agent =
        connect_template_agent(c.vsock->uds_path, std::min<std::chrono::milliseconds>(o.timeout, std::chrono::seconds(30)));
    if (agent) {
      // What a booted Sandbox gets first (Sandbox::Impl::connect_agent): host entropy, which
      // seeds the kernel's CRNG (a guest with no RNG device seeds it slowly alone: in kvm-lab
      // not before the snapshot), and the wall clock (CMOS reads 0). Without it the warm-up ran with an
      // unseeded CRNG in 1970, and every child seeded it at its identity instead, printing
      // "random: crng init done" on its serial console while its first exec waited.
      GuestIdentity identity;
      identity.wall_clock = std::chrono::system_clock::now();
      agent->set_identity(identity);
    }
    if (!o.warm_up.empty()) {
      if (!agent) {
        std::cerr << "forkvm snapshot create: the agent did not answer, so the warm-up could not "
                     "run (--no-warm-up snapshots without one)\n";
        return kExitGuestFailed;
      }
      warm_up(*vm, *agent, o.warm_up, o.timeout);
    }
    CaptureOptions capture;
    AgentClient::Quiet quiet;  // held across the snapshot: nothing is sent meanwhile
    if (agent) quiet = agent->hold_quiet();
    if (quiet.quiet) capture.carry_vsock.push_back({protocol::kAgentPort, agent->protocol_version()});
    const auto t0 = std::chrono::steady_clock::now();
    vm->snapshot(o.dir, capture);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    vm->stop();
    std::printf("snapshot written to %s in %.1f ms (%u vCPU, %llu MiB; agent connection %s; "
                "%zu warm-up command%s)\n",
                o.dir.c_str(), ms, c.vcpus, static_cast<unsigned long long>(c.memory_mib),
                quiet.quiet ? "carried" : "not carried: the agent did not answer",
                o.warm_up.size(), o.warm_up.size() == 1 ? "" : "s");
    return 0;
  } catch (const GuestError& e) {
    std::cerr << "forkvm snapshot create: " << e.what() << "\n";
    return kExitGuestFailed;
  } catch (const Error& e) {
    std::cerr << "forkvm snapshot create: " << e.what() << "\n";
    return kExitSetup;
  }
}

}  // namespace

int snapshot_create(std::span<char* const> args) {
  try {
    const auto o = parse_create(args);
    if (!o) {
      std::fputs(kCreateUsage, stdout);
      return 0;
    }
    return create(*o);
  } catch (const UsageError& e) {
    std::cerr << "forkvm snapshot create: " << e.what() << "\n" << kCreateUsage;
    return kExitUsage;
  }
}

}  // namespace forkvm::cli
