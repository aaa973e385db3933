// The guest side of `forkvm-bench restore`'s QEMU reference: a shell loop on the serial port,
// started at boot by the agent's forkvm.run, that answers each request line by running a
// trivial command. It stands in for forkvm's agent answering exec(["true"]): the guest reads
// a request, forks and execs /bin/true (busybox, as forkvm's agent runs it), and only then
// answers. Pure text handling here (unit-tested); bench/qemu_restore.cpp drives QEMU.
#pragma once

#include <string>
#include <string_view>

namespace forkvm::bench {

/// What the guest prints once it listens: the console is raw then (no echo), so that a
/// request is never mistaken for its answer.
inline constexpr std::string_view kResponderReady = "RESPONDER-READY";

/// The shell command for forkvm.run (not yet encoded): takes /dev/ttyS0 as stdin and stdout,
/// `stty raw -echo`, prints kResponderReady, then for every line L runs /bin/true and prints
/// "ANSWER L". Written so that neither the ready marker nor an answer appears literally in
/// it: the kernel prints its command line on the same console.
std::string serial_responder_command();

/// The kernel command line of the QEMU guest: the console on ttyS0, reboot=t (QEMU's microvm
/// has no i8042), and the responder as forkvm.run, percent-encoded.
std::string serial_responder_cmdline();

/// The request line of round `n` ("req-<n>\n").
std::string responder_request(unsigned n);

/// Whether `console` holds the complete answer to request `n`: a line "ANSWER req-<n>" ended
/// by '\n' or '\r' (so "req-1" is not taken for "req-12").
bool responder_answered(std::string_view console, unsigned n);

}  // namespace forkvm::bench
