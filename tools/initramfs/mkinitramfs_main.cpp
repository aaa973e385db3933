// forkvm-mkinitramfs: builds the built-in guest image (see builtin_image.hpp).
//
//   forkvm-mkinitramfs -o OUT.cpio.gz --agent PATH --busybox PATH
//                      [--add HOSTPATH:GUESTPATH[:MODE]]...
//
// The applet list comes from running `PATH --list-full` on the given busybox. The output is
// deterministic and written atomically (temporary file, then rename).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "forkvm/errors.hpp"
#include "tools/initramfs/atomic_file.hpp"
#include "tools/initramfs/builtin_image.hpp"

namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

void usage(std::FILE* to) {
  std::fputs(
      "usage: forkvm-mkinitramfs -o OUT.cpio.gz --agent PATH --busybox PATH\n"
      "                          [--add HOSTPATH:GUESTPATH[:MODE]]...\n"
      "Builds forkvm's built-in initramfs: the agent as /init, busybox at /bin/busybox with\n"
      "its applet symlinks, /dev/console, and the given extra files.\n",
      to);
}

struct Args {
  std::string out;
  forkvm::BuiltinImageSpec spec;
};

// Returns false (after printing why) on a usage error.
bool parse_args(int argc, char** argv, Args& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "forkvm-mkinitramfs: %s: missing value or unknown option\n", argv[i]);
      return false;
    }
    const std::string value = argv[++i];
    if (a == "-o" || a == "--output") {
      args.out = value;
    } else if (a == "--agent") {
      args.spec.agent_path = value;
    } else if (a == "--busybox") {
      args.spec.busybox_path = value;
    } else if (a == "--add") {
      args.spec.extra_files.push_back(forkvm::parse_extra_file(value));
    } else {
      std::fprintf(stderr, "forkvm-mkinitramfs: unknown option %s\n", argv[i - 1]);
      return false;
    }
  }
  if (args.out.empty() || args.spec.agent_path.empty() || args.spec.busybox_path.empty()) {
    std::fputs("forkvm-mkinitramfs: -o, --agent and --busybox are required\n", stderr);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args args;
    if (!parse_args(argc, argv, args)) {
      usage(stderr);
      return kExitUsage;
    }
    args.spec.busybox_applets = forkvm::list_busybox_applets(args.spec.busybox_path);
    const forkvm::CpioWriter image = forkvm::build_builtin_image(args.spec);
    const std::vector<uint8_t> bytes = image.to_cpio_gz();
    forkvm::write_file_atomic(args.out, bytes);
    std::printf("forkvm-mkinitramfs: wrote %s (%zu entries, %zu bytes)\n", args.out.c_str(),
                image.entries().size(), bytes.size());
    return 0;
  } catch (const forkvm::ConfigError& e) {
    std::fprintf(stderr, "forkvm-mkinitramfs: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-mkinitramfs: error: %s\n", e.what());
    return kExitError;
  }
}
