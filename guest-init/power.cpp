#include "guest-init/power.hpp"

#include <sys/reboot.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>

#include "guest-init/boot_port.hpp"
#include "guest-init/console.hpp"

namespace forkvm {
namespace {

// Only reached when reboot() fails, which it should not for PID 1: park forever rather than
// return (PID 1 returning from main panics the kernel, which is a worse signal to the VMM).
[[noreturn]] void reset_or_hang() noexcept {
  ::reboot(RB_AUTOBOOT);
  say("fatal: reboot(RB_AUTOBOOT) failed; halting here");
  send_boot_signal(BootSignal::kFatal, static_cast<uint32_t>(FatalReason::kPowerOff));
  for (;;) ::pause();
}

// Async-signal-safe: say(), send_boot_signal(), sync() and reboot() are plain system calls.
void on_crash(int signo) {
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "fatal: the agent crashed (signal %d)", signo);
  say(std::string_view(buf, n > 0 ? static_cast<size_t>(n) : 0));
  send_boot_signal(BootSignal::kFatal, static_cast<uint32_t>(FatalReason::kCrash));
  ::sync();
  reset_or_hang();
}

}  // namespace

void power_off(uint32_t status) noexcept {
  char buf[64];
  const int n = std::snprintf(buf, sizeof buf, "powering off (status %u)", status);
  say(std::string_view(buf, n > 0 ? static_cast<size_t>(n) : 0));
  ::sync();
  send_boot_signal(BootSignal::kPowerOff, status);
  reset_or_hang();
}

void fatal(FatalReason reason, std::string_view why) noexcept {
  static constexpr std::string_view kPrefix = "fatal: ";
  char buf[512];
  const size_t len = std::min(why.size(), sizeof buf - kPrefix.size());
  kPrefix.copy(buf, kPrefix.size());
  why.copy(buf + kPrefix.size(), len);
  say(std::string_view(buf, kPrefix.size() + len));
  send_boot_signal(BootSignal::kFatal, static_cast<uint32_t>(reason));
  ::sync();
  reset_or_hang();
}

void install_crash_handlers() noexcept {
  struct sigaction sa {};
  sa.sa_handler = on_crash;
  sa.sa_flags = SA_RESETHAND;  // a crash inside the handler then kills (and panics) for real
  sigemptyset(&sa.sa_mask);
  for (int signo : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) ::sigaction(signo, &sa, nullptr);
}

}  // namespace forkvm
