#include "bench/serial_responder.hpp"

#include "contract/run_command.hpp"

namespace forkvm::bench {

std::string serial_responder_command() {
  // The quotes split the marker for the kernel's printout of its command line; the shell
  // joins them again. /bin/true by path: a real fork and exec even in a busybox shell that
  // runs applets in-process when named bare.
  return "exec </dev/ttyS0 >/dev/ttyS0; stty raw -echo; echo RESPONDER-\"READY\"; "
         "while read -r l; do /bin/true; echo \"ANSWER $l\"; done";
}

std::string serial_responder_cmdline() {
  return "console=ttyS0 reboot=t panic=1 forkvm.run=" + encode_run_command(serial_responder_command());
}

std::string responder_request(unsigned n) { return "req-" + std::to_string(n) + "\n"; }

bool responder_answered(std::string_view console, unsigned n) {
  const std::string want = "ANSWER req-" + std::to_string(n);
  for (size_t at = console.find(want); at != std::string_view::npos; at = console.find(want, at + 1)) {
    const size_t end = at + want.size();
    if (end < console.size() && (console[end] == '\n' || console[end] == '\r')) return true;
  }
  return false;
}

}  // namespace forkvm::bench
