// How forkvm's own threads behave inside the embedding process: the system-call filters its vCPU
// and device threads put on themselves, and the signal that kicks a vCPU out of the guest. Both
// are process-wide settings; set them before the first VM starts.
//
// Thread filters: each vCPU thread, each virtio device worker (vsock, block, net) and the one
// network thread (every sandbox's egress proxy and exposed ports, on Boost.Asio) installs a
// seccomp filter on itself only (never on the process, never TSYNC), after PR_SET_NO_NEW_PRIVS
// (which also applies to that thread alone), allowing the system calls that kind of thread
// needs. The network thread may open sockets (Unix, IPv4, IPv6) and files for reading only
// (OpenSSL's trust store); it may not write files, exec or start threads or processes. Its
// name lookups run on a resolver thread of forkvm's own (getaddrinfo), filtered too: sockets
// (also netlink, for AI_ADDRCONFIG) and read-only files (glibc's configuration and NSS
// modules). The agent reader, the template refill, the reaper and the shell pool threads are
// not filtered. A call outside its list is not executed: it returns EPERM to the caller, is counted
// (thread_filter_stats()) and is logged to stderr the first time each system call is refused.
// It never kills the process. The refusal goes through SIGSYS: forkvm installs a SIGSYS handler
// when the first filter is installed, and hands a SIGSYS that is not from one of its filtered
// threads to the handler that was there before (or to the default action). Threads forkvm
// starts from a filtered thread (a device worker started when the guest's driver activates the
// device) are started from an unfiltered helper thread, so a worker carries its own filter and
// not its parent's.
//
// Kick signal: a vCPU thread is interrupted inside KVM_RUN with a real-time signal whose handler
// does nothing (SIGRTMIN by default). forkvm installs that handler when the first VM starts and
// refuses (SignalConflictError) to replace a handler the embedding program set on that signal:
// choose another one with set_vcpu_kick_signal() before the first VM starts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "forkvm/errors.hpp"

namespace forkvm {

/// forkvm would have to replace a signal disposition the embedding program set: the vCPU kick
/// signal already has a handler, or is ignored. Nothing was changed; choose a free signal with
/// set_vcpu_kick_signal() before the first VM starts.
class SignalConflictError : public Error {
 public:
  SignalConflictError(int signo, const std::string& what) : Error(what), signal_(signo) {}
  /// The signal number.
  int signal() const noexcept { return signal_; }

 private:
  int signal_;
};

/// Turns the thread filters on or off for threads that start afterwards (default on). Off is
/// for debugging (e.g. strace of a guest's device traffic); threads already filtered keep their
/// filter (the kernel cannot remove one).
void set_thread_filters_enabled(bool enabled) noexcept;
/// Whether threads that start now install their filter.
bool thread_filters_enabled() noexcept;

/// How often one system call was refused by a thread filter.
struct DeniedSystemCall {
  int number = 0;    ///< the x86-64 system call number (-1: any number past the counted range)
  std::string name;  ///< its name ("socket"), or "#<number>" when unknown
  uint64_t count = 0;
};

/// The thread filters' state in this process.
struct ThreadFilterStats {
  /// set_thread_filters_enabled()'s current value.
  bool enabled = true;
  /// Threads that installed a filter (vCPU and device threads since the process started).
  uint64_t threads_filtered = 0;
  /// Threads that should have installed one and could not (the kernel refused it: no seccomp
  /// support); they ran unfiltered, and the first failure was logged.
  uint64_t install_failures = 0;
  /// Calls refused with EPERM, all system calls together.
  uint64_t denied_calls = 0;
  /// The refused calls per system call, by number.
  std::vector<DeniedSystemCall> denied;
};

/// The current counters.
ThreadFilterStats thread_filter_stats();

/// Chooses the signal that kicks vCPU threads out of KVM_RUN: one of SIGRTMIN..SIGRTMAX, not
/// used by the embedding program (forkvm installs its handler on it and the vCPU threads
/// unblock it). Call before the first VM starts. Throws ConfigError for a signal outside that
/// range, InvalidStateError once the handler is installed on another signal (it stays there
/// for the life of the process).
void set_vcpu_kick_signal(int signo);
/// The kick signal in use (or to be used when the first VM starts).
int vcpu_kick_signal() noexcept;

}  // namespace forkvm
