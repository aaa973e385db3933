// The agent's console output: every line starts with "forkvm-agent: " so that the VMM and
// humans can tell the agent's lines from the kernel's and from child processes'.
#pragma once

#include <string>
#include <string_view>

namespace forkvm {

/// Writes "forkvm-agent: <message>\n" to stdout (the console) in one write. Never allocates
/// and never throws, so it is usable on fatal paths.
void say(std::string_view message) noexcept;

/// Waits until the console has transmitted everything written to it (tcdrain): the serial
/// driver sends in the background, so without this a boot signal written right after a line
/// can reach the host before the line's last bytes do.
void drain_console() noexcept;

/// Opens /dev/console (from devtmpfs) as stdin, stdout and stderr. Throws AgentError.
void setup_console();

/// The device node of the console the kernel writes to ("/dev/ttyS0"), from
/// /sys/class/tty/console/active; "/dev/console" when that cannot be read. A shell needs the
/// real tty: /dev/console can never become a controlling terminal, so job control and Ctrl-C
/// would not work on it.
std::string console_tty_path();

/// `text` made safe for one console line: control bytes become '?', and it is cut to
/// `max_len` bytes with "..." appended when longer.
std::string printable(std::string_view text, size_t max_len);

}  // namespace forkvm
