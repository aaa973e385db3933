// forkvm: command-line front end of the forkvm library.
#include <cstdio>
#include <cstring>
#include <span>

#include "tools/cli/boot_command.hpp"
#include "tools/cli/run_command.hpp"
#include "tools/cli/snapshot_command.hpp"

namespace {

constexpr const char* kMainUsage =
    "usage: forkvm <command> [options]\n"
    "commands:\n"
    "  boot    boot a guest (the built-in image by default) and wait for it to power off\n"
    "  run     run one command in a transient sandbox: forkvm run [options] -- ARGV...\n"
    "  snapshot  make a template snapshot (create DIR) or check one (inspect DIR)\n"
    "Run 'forkvm <command> --help' for the options of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kMainUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? forkvm::cli::kExitUsage : 0;
  }
  const std::span<char* const> rest(argv + 2, static_cast<size_t>(argc - 2));
  if (std::strcmp(argv[1], "boot") == 0) return forkvm::cli::boot_command(rest);
  if (std::strcmp(argv[1], "run") == 0) return forkvm::cli::run_command(rest);
  if (std::strcmp(argv[1], "snapshot") == 0) return forkvm::cli::snapshot_command(rest);
  std::fprintf(stderr, "forkvm: unknown command '%s'\n%s", argv[1], kMainUsage);
  return forkvm::cli::kExitUsage;
}
