#include "tools/cli/boot_command.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "base/text.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/vm.hpp"
#include "tools/cli/args.hpp"
#include "tools/cli/builtin_image.hpp"
#include "tools/cli/console_input.hpp"
#include "tools/cli/disk_spec.hpp"
#include "tools/cli/rootfs_option.hpp"

namespace forkvm::cli {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }

constexpr const char* kBootUsage =
    "usage: forkvm boot [--kernel FILE] [--initramfs FILE] [--vcpus N] [--memory MiB]\n"
    "                   [--cmdline ARGS] [--console FILE|-] [--timeout SECONDS]\n"
    "                   [--disk PATH[:ro][,id=ID]]... [--rootfs IMG|minimal]\n"
    "Boots the built-in guest image (or the given kernel/initramfs), streams its console, prints\n"
    "the boot-to-agent-ready time, and exits when the guest powers off: with the status the\n"
    "guest reported (0 normally), 4 when it panicked or reset, 5 on --timeout (default 300),\n"
    "3 when it could not start. --cmdline is appended to the default kernel command line.\n"
    "Once the agent is ready, stdin is forwarded to the guest console (for example with\n"
    "--cmdline forkvm.after_ready=shell). --rootfs IMG makes an ext4 image the root under a\n"
    "writable overlay in RAM (the default here is 'minimal': the initramfs alone).\n";

struct BootOptions {
  VmConfig config;
  std::optional<std::string> rootfs;
  std::string console = "-";
  uint64_t timeout_s = 300;
};

BootOptions parse(std::span<char* const> argv) {
  BootOptions o;
  Args args(argv);
  while (args.more()) {
    const std::string opt = args.next_option();
    if (opt == "--kernel") o.config.kernel = args.value(opt);
    else if (opt == "--initramfs") o.config.initramfs = args.value(opt);
    else if (opt == "--vcpus") o.config.vcpus = static_cast<uint32_t>(args.number(opt, 0, 1u << 20));
    else if (opt == "--memory") o.config.memory_mib = args.number(opt, 0, uint64_t{1} << 40);
    else if (opt == "--cmdline") o.config.extra_cmdline = args.value(opt);
    else if (opt == "--console") o.console = args.value(opt);
    else if (opt == "--disk") o.config.disks.push_back(parse_disk_spec(args.value(opt)));
    else if (opt == "--rootfs") o.rootfs = parse_rootfs_option(args.value(opt));
    else if (opt == "--timeout") o.timeout_s = args.number(opt, 1, 86400);
    else if (opt == "--help" || opt == "-h") throw UsageError("");
    else throw UsageError("unknown option '" + opt + "'");
  }
  attach_root_filesystem(o.config, choose_rootfs(o.rootfs, o.config.kernel.empty(), false, ""));
  // The built-in image is the default; a user kernel without --initramfs boots without one.
  if (o.config.kernel.empty()) {
    o.config.kernel = builtin_kernel();
    if (o.config.initramfs.empty()) o.config.initramfs = builtin_initramfs();
  }
  return o;
}

/// Sends the console to stdout or to a file.
std::function<void(std::string_view)> console_sink(const std::string& target) {
  if (target == "-") {
    return [](std::string_view s) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    };
  }
  auto file = std::make_shared<std::ofstream>(target, std::ios::binary | std::ios::trunc);
  if (!*file) throw ConfigError("--console: cannot open '" + target + "' for writing");
  return [file](std::string_view s) { file->write(s.data(), static_cast<std::streamsize>(s.size())).flush(); };
}

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

int report(const VmResult& r, Vm& vm) {
  if (r.reason == StopReason::kPowerOff) {
    std::fprintf(stderr, "forkvm: guest powered off (status %u)\n", r.exit_status);
    return static_cast<int>(std::min<uint32_t>(r.exit_status, 255));
  }
  std::fprintf(stderr, "forkvm: guest stopped: %s: %s\n--- console tail ---\n%s\n",
               std::string(to_string(r.reason)).c_str(), r.detail.c_str(),
               printable_lines(vm.console_tail()).c_str());
  return kExitGuestFailed;
}

}  // namespace

int boot_command(std::span<char* const> argv) {
  BootOptions o;
  try {
    o = parse(argv);
  } catch (const UsageError& e) {
    if (*e.what() != '\0') std::fprintf(stderr, "forkvm boot: %s\n", e.what());
    std::fputs(kBootUsage, stderr);
    std::fputs(kDiskUsage, stderr);
    return *e.what() != '\0' ? kExitUsage : 0;
  }
  std::unique_ptr<Vm> vm;
  try {
    o.config.console = console_sink(o.console);
    vm = Vm::create(o.config);
  } catch (const Error& e) {
    std::fprintf(stderr, "forkvm boot: %s\n", e.what());
    return kExitSetup;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.timeout_s);
  vm->start();
  ConsoleInput input(*vm);
  bool announced = false;
  // Poll in short slices so Ctrl-C is noticed promptly.
  while (std::chrono::steady_clock::now() < deadline) {
    if (g_interrupted) {
      vm->stop();
      std::fprintf(stderr, "forkvm: interrupted; VM stopped\n");
      return kExitInterrupted;
    }
    if (!announced && vm->start_to_ready()) {
      announced = true;
      std::fprintf(stderr, "forkvm: agent ready %.1f ms after start (VM build %.1f ms)\n",
                   ms(*vm->start_to_ready()), ms(vm->build_time()));
      input.start();
    }
    if (auto r = vm->wait(std::chrono::milliseconds(100))) {
      if (!announced && vm->start_to_ready()) {
        std::fprintf(stderr, "forkvm: agent ready %.1f ms after start (VM build %.1f ms)\n",
                     ms(*vm->start_to_ready()), ms(vm->build_time()));
      }
      return report(*r, *vm);
    }
  }
  // A guest that never became ready gets the account of where it is (stuck or slow), taken
  // before it is stopped.
  const std::string where = announced ? "" : "\n" + vm->progress_report();
  vm->stop();
  std::fprintf(stderr, "forkvm: guest still running after %llu s; stopped%s\n--- console tail ---\n%s\n",
               static_cast<unsigned long long>(o.timeout_s), where.c_str(),
               printable_lines(vm->console_tail()).c_str());
  return kExitTimeout;
}

}  // namespace forkvm::cli
