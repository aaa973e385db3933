// ThreadFilter: the seccomp filter a forkvm thread (a vCPU, a device worker) installs on itself
// (include/forkvm/host_threads.hpp says what the embedder sees). Built once per kind of thread
// with libseccomp and kept as a BPF program, so installing it on a new thread is one prctl.
//
// Every list starts from what any forkvm thread does through glibc and the C++ runtime: memory
// (malloc's mmap/munmap/mremap/madvise/brk/mprotect), futex (mutexes, condition variables,
// joins), the time (clock_gettime when the vDSO falls back, sleeps), read/write/close of its own
// descriptors (eventfds, stderr), signals (rt_sigreturn after the kick handler,
// rt_sigprocmask, tgkill for a kick from another vCPU's thread), getpid/gettid, exit, and
// sched_getaffinity (glibc's malloc sizing its arenas). glibc's read-only openat for the same
// purpose fails with ENOENT without being counted (thread_filter.cpp, kSilentOpenFlags). Each
// kind adds its own calls; a vCPU's ioctls are limited to the request numbers it lists.
//
// An unlisted call traps (SECCOMP_RET_TRAP): the SIGSYS handler sets the call's return value to
// -EPERM in the interrupted context, counts it per system call number and, the first time a
// number is refused, writes one line to stderr with write(2). Everything it does is
// async-signal-safe (lock-free atomics, write). ERRNO(EPERM) alone would give the same result to
// the caller but nothing to count or log.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace forkvm {

/// What a kind of filtered thread may open besides its system calls.
struct ThreadFilterAccess {
  /// socket() of these address families (AF_UNIX, AF_INET, ...) and no other.
  std::vector<int> socket_families;
  /// openat() for reading only (no write access, O_CREAT, O_TRUNC or O_APPEND): for a thread
  /// whose libraries read files lazily (OpenSSL's trust store). Without it every openat but
  /// glibc's own (kSilentOpenFlags in thread_filter.cpp) is refused.
  bool read_only_opens = false;
};

/// One kind of thread's filter. Make one per kind, in static storage (install() keeps a pointer
/// to its name for the log line).
class ThreadFilter {
 public:
  using Access = ThreadFilterAccess;

  /// `name` names the kind in logs ("vcpu", "vsock"). `syscalls` are allowed besides the common
  /// ones (file comment). `ioctl_requests`, when not empty, allows ioctl with those request
  /// numbers (compared on their low 32 bits, as the kernel does).
  ThreadFilter(std::string name, std::vector<int> syscalls, std::vector<uint32_t> ioctl_requests = {},
               Access access = {});
  ThreadFilter(const ThreadFilter&) = delete;
  ThreadFilter& operator=(const ThreadFilter&) = delete;

  /// Filters the calling thread from now on, unless thread filters are turned off
  /// (set_thread_filters_enabled). Sets PR_SET_NO_NEW_PRIVS on the thread first and unblocks
  /// SIGSYS on it. Returns whether a filter was installed; a kernel that refuses is counted and
  /// logged once, and the thread runs on unfiltered. Never throws.
  bool install() const noexcept;

  const std::string& name() const noexcept { return name_; }

 private:
  /// Builds the BPF program (once).
  void compile() const;

  std::string name_;
  std::vector<int> syscalls_;
  std::vector<uint32_t> ioctl_requests_;
  Access access_;
  mutable std::once_flag once_;
  /// The program as struct sock_filter words (8 bytes each); empty when building failed.
  mutable std::vector<uint64_t> program_;
};

/// Whether the calling thread installed a ThreadFilter.
bool current_thread_filtered() noexcept;

}  // namespace forkvm
