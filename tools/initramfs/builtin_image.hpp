// The built-in guest image: forkvm's PID-1 agent as /init, a static busybox with its applet
// symlinks, the directories the agent mounts on, and /dev/console (the kernel opens it for
// init's stdin/stdout/stderr before devtmpfs is mounted). Used by forkvm-mkinitramfs at build
// time and available to the library for building images at runtime.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/initramfs/cpio_writer.hpp"

namespace forkvm {

/// One extra host file to put into the image.
struct ExtraFile {
  std::string host_path;        ///< file on the host
  std::string guest_path;       ///< where it goes in the guest ("/opt/x" or "opt/x")
  std::optional<uint32_t> mode; ///< permission bits; the host file's when unset
};

/// Everything the built-in image is made of.
struct BuiltinImageSpec {
  std::string agent_path;                     ///< static forkvm-agent, installed as /init
  std::string busybox_path;                   ///< static busybox, installed as /bin/busybox
  std::vector<std::string> busybox_applets;   ///< `busybox --list-full` lines ("bin/sh", ...)
  std::vector<ExtraFile> extra_files;         ///< added last; they win over applet symlinks
};

/// Builds the image. The agent and busybox must be static x86-64 executables (ImageError
/// naming the file otherwise). Applets become symlinks to /bin/busybox, except "init" and
/// "linuxrc" (the agent is init) and paths already taken by another entry.
CpioWriter build_builtin_image(const BuiltinImageSpec& spec);

/// Runs `busybox --list-full` and returns its lines (e.g. "bin/sh", "usr/bin/env"). Throws
/// ImageError naming the busybox binary when it cannot be run or fails.
std::vector<std::string> list_busybox_applets(const std::string& busybox_path);

/// Parses "HOSTPATH:GUESTPATH[:MODE]" (MODE in octal, e.g. 0755). Throws ConfigError on a
/// malformed argument.
ExtraFile parse_extra_file(std::string_view arg);

}  // namespace forkvm
