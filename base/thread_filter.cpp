#include "base/thread_filter.hpp"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/thread_launcher.hpp"
#include "forkvm/host_threads.hpp"

namespace forkvm {
namespace {

static_assert(sizeof(sock_filter) == sizeof(uint64_t), "a BPF instruction is 8 bytes");

/// x86-64 system call numbers are below this; a number past it (another architecture's, through
/// int 0x80) is counted in the last slot.
constexpr size_t kCountedSyscalls = 512;

/// si_code of a SIGSYS raised by a seccomp filter (SYS_SECCOMP in asm-generic/siginfo.h, which
/// glibc's headers do not export).
constexpr int kSysSeccomp = 1;

std::atomic<bool> g_enabled{true};
std::atomic<uint64_t> g_threads{0};
std::atomic<uint64_t> g_failures{0};
std::atomic<bool> g_failure_logged{false};
/// Refusals per system call number; the last slot holds every number >= kCountedSyscalls - 1.
std::array<std::atomic<uint64_t>, kCountedSyscalls> g_denied{};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "the SIGSYS handler needs lock-free counters");

/// The name of the calling thread's filter, or null: read by the SIGSYS handler, so the
/// initial-exec TLS model (no allocation, no lock on first access from a signal handler).
[[gnu::tls_model("initial-exec")]] thread_local const char* t_filter = nullptr;

/// The SIGSYS disposition before forkvm's, written once before forkvm's handler is installed.
struct sigaction g_previous_sigsys {};

/// Appends `text` to buf[pos..], never past `cap`. Async-signal-safe.
size_t put(char* buf, size_t pos, size_t cap, const char* text) noexcept {
  while (*text != '\0' && pos < cap) buf[pos++] = *text++;
  return pos;
}

/// Appends `value` in decimal. Async-signal-safe.
size_t put_number(char* buf, size_t pos, size_t cap, long value) noexcept {
  char digits[24];
  size_t n = 0;
  unsigned long v = value < 0 ? 0UL - static_cast<unsigned long>(value) : static_cast<unsigned long>(value);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < sizeof digits);
  if (value < 0 && pos < cap) buf[pos++] = '-';
  while (n > 0 && pos < cap) buf[pos++] = digits[--n];
  return pos;
}

/// A SIGSYS that is not from a forkvm thread's filter goes where it went before forkvm.
void forward_sigsys(int sig, siginfo_t* info, void* context) noexcept {
  const struct sigaction& prev = g_previous_sigsys;
  if ((prev.sa_flags & SA_SIGINFO) != 0) {
    if (prev.sa_sigaction != nullptr) prev.sa_sigaction(sig, info, context);
    return;
  }
  if (prev.sa_handler == SIG_IGN) return;
  if (prev.sa_handler == SIG_DFL) {
    // The default action (terminate with a core dump), as without forkvm: restore it and raise
    // again; the signal is blocked while this handler runs, so it lands on return.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, nullptr);
    raise(sig);
    return;
  }
  prev.sa_handler(sig);
}

void on_sigsys(int sig, siginfo_t* info, void* context) {
  const char* filter = t_filter;
  if (filter == nullptr || info == nullptr || info->si_code != kSysSeccomp || context == nullptr) {
    forward_sigsys(sig, info, context);
    return;
  }
  const int saved_errno = errno;
  // The trapped call was not executed; its return value is what the thread sees.
  auto* uc = static_cast<ucontext_t*>(context);
#if defined(__x86_64__)
  uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
#else
#error "thread filters set the return register of x86-64 only"
#endif
  const int nr = info->si_syscall;
  const size_t slot = nr >= 0 && static_cast<size_t>(nr) < kCountedSyscalls - 1
                          ? static_cast<size_t>(nr)
                          : kCountedSyscalls - 1;
  if (g_denied[slot].fetch_add(1, std::memory_order_relaxed) == 0) {
    // The first refusal of this number in the process: one line, with write(2) only.
    char line[200];
    constexpr size_t cap = sizeof line - 1;
    size_t n = put(line, 0, cap, "forkvm: the ");
    n = put(line, n, cap, filter);
    n = put(line, n, cap, " thread filter refused system call ");
    n = put_number(line, n, cap, nr);
    n = put(line, n, cap, " (EPERM; counted in forkvm::thread_filter_stats(), logged once)\n");
    [[maybe_unused]] const ssize_t w = ::write(STDERR_FILENO, line, n);
  }
  errno = saved_errno;
}

void install_sigsys_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigsys;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO;
    // The previous disposition is read and kept before ours goes in (forward_sigsys()).
    sigaction(SIGSYS, nullptr, &g_previous_sigsys);
    if (g_previous_sigsys.sa_sigaction == on_sigsys) return;
    sigaction(SIGSYS, &sa, nullptr);
  });
}

void count_failure(const std::string& filter, const char* what, int err) noexcept {
  g_failures.fetch_add(1, std::memory_order_relaxed);
  if (!g_failure_logged.exchange(true)) {
    std::fprintf(stderr, "forkvm: the %s thread filter cannot be installed (%s: %s); forkvm's threads run "
                 "unfiltered\n", filter.c_str(), what, std::strerror(err));
  }
}

/// The calls every forkvm thread makes through glibc and the C++ runtime (the header's comment).
constexpr int kCommonSyscalls[] = {
    // memory: malloc and its arenas, thread stacks freed at exit
    SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(brk),
    SCMP_SYS(mprotect),
    // locks, condition variables, joins
    SCMP_SYS(futex), SCMP_SYS(sched_yield),
    // glibc's malloc sizing its arenas, once per process on whichever thread first needs a new
    // one: get_nprocs() falls back to the affinity mask (see kSilentOpenFlags)
    SCMP_SYS(sched_getaffinity),
    // time (vDSO fallbacks) and sleeps
    SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
    // own descriptors: eventfds, stderr, closing what the thread owns
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(close),
    // signals: the kick handler's return, masks, a kick sent to another vCPU thread
    SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(tgkill), SCMP_SYS(restart_syscall),
    SCMP_SYS(getpid), SCMP_SYS(gettid),
    // the end of the thread (and of the process, should a thread ever end it)
    SCMP_SYS(exit), SCMP_SYS(exit_group),
};

/// Makes this thread allocate once, so that glibc attaches it to a malloc arena now, before its
/// filter. glibc does that at a thread's first allocation, and the first thread that needs a new
/// arena once more than 8 exist with none free computes the process's arena limit from the CPU
/// count (openat of /sys/devices/system/cpu/online and /proc/stat, sched_getaffinity): under a
/// filter, three refused calls and a limit computed from no CPUs (`forkvm-bench soak` caught a
/// vCPU thread doing it). Afterwards the thread keeps its arena; nothing else in malloc needs
/// calls outside the common list.
void attach_malloc_arena() noexcept {
  void* p = std::malloc(1);
  asm volatile("" : : "r"(p) : "memory");  // used, as far as the compiler knows: the pair stays
  std::free(p);
}

/// The flags of glibc's internal read-only opens (get_nprocs() reading
/// /sys/devices/system/cpu/online, then /proc/stat, when malloc sizes its arenas). Should a
/// filtered thread still get there (attach_malloc_arena() makes it unlikely; glibc may also
/// count processors elsewhere), an openat with exactly these flags fails with ENOENT without a
/// trap and glibc falls back to sched_getaffinity (allowed) quietly. No forkvm thread opens
/// files; any other openat traps, is counted and logged.
constexpr unsigned kSilentOpenFlags = O_RDONLY | O_CLOEXEC;

}  // namespace

ThreadFilter::ThreadFilter(std::string name, std::vector<int> syscalls,
                           std::vector<uint32_t> ioctl_requests, Access access)
    : name_(std::move(name)),
      syscalls_(std::move(syscalls)),
      ioctl_requests_(std::move(ioctl_requests)),
      access_(std::move(access)) {}

void ThreadFilter::compile() const {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
  if (ctx == nullptr) return;
  bool ok = true;
  // No-new-privs is set by install() on this thread; TSYNC stays off (the default): the filter
  // is for the installing thread only. A call of another architecture traps too (the default
  // would kill the thread).
  ok = ok && seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) == 0;
  ok = ok && seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP) == 0;
  for (const int nr : kCommonSyscalls) ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) == 0;
  for (const int nr : syscalls_) ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) == 0;
  for (const uint32_t request : ioctl_requests_) {
    // The kernel reads the request as an unsigned int: compare the low 32 bits only.
    ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, request)) == 0;
  }
  if (access_.read_only_opens) {
    // Any openat whose flags ask for no write access and no creation, truncation or appending.
    // (glibc's own opens are among them, so the silent rule below is not needed.)
    constexpr uint64_t kWriteFlags = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND;
    ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                                SCMP_A2(SCMP_CMP_MASKED_EQ, kWriteFlags, O_RDONLY)) == 0;
  } else {
    ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOENT), SCMP_SYS(openat), 1,
                                SCMP_A2(SCMP_CMP_MASKED_EQ, 0xffffffffULL, kSilentOpenFlags)) == 0;
  }
  for (const int family : access_.socket_families) {
    ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffULL,
                                        static_cast<uint64_t>(family))) == 0;
  }
  // libseccomp 2.5 exports to a descriptor only: through a memfd, read back once.
  const int fd = ok ? ::memfd_create("forkvm-thread-filter", MFD_CLOEXEC) : -1;
  if (fd >= 0 && seccomp_export_bpf(ctx, fd) == 0) {
    const off_t size = ::lseek(fd, 0, SEEK_END);
    if (size > 0 && size % static_cast<off_t>(sizeof(sock_filter)) == 0) {
      std::vector<uint64_t> words(static_cast<size_t>(size) / sizeof(sock_filter));
      if (::pread(fd, words.data(), static_cast<size_t>(size), 0) == size) program_ = std::move(words);
    }
  }
  if (fd >= 0) ::close(fd);
  seccomp_release(ctx);
}

bool ThreadFilter::install() const noexcept {
#ifdef FORKVM_SANITIZED
  // A sanitizer runtime makes system calls of its own on every thread, which no list here
  // names: ASan's sigaltstack for a thread, UBSan's pipe2 to probe memory in its vptr check,
  // open/stat/ioctl when it reports. Filtered, they fail (ASan CHECK-fails on the refused
  // sigaltstack), so a sanitizer tree (FORKVM_SANITIZE) runs its threads unfiltered; the
  // ordinary build and its tests keep them filtered.
  return false;
#endif
  if (!g_enabled.load(std::memory_order_relaxed)) return false;
  try {
    std::call_once(once_, [this] { compile(); });
    // A filtered thread's own threads must not inherit its filter: they are started by a
    // helper thread, which must itself start unfiltered, i.e. from here, before the filter.
    prepare_thread_launcher();
    install_sigsys_handler();
  } catch (const std::exception&) {
    count_failure(name_, "setup", ENOMEM);
    return false;
  }
  if (program_.empty()) {
    count_failure(name_, "libseccomp could not build the program", EINVAL);
    return false;
  }
  attach_malloc_arena();
  // A blocked SIGSYS would make the kernel kill the process on the first refusal.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGSYS);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    count_failure(name_, "PR_SET_NO_NEW_PRIVS", errno);
    return false;
  }
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program_.size());
  prog.filter = reinterpret_cast<sock_filter*>(const_cast<uint64_t*>(program_.data()));
  // Named before it is live: the handler reads it for the first refusal.
  t_filter = name_.c_str();
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
    t_filter = nullptr;
    count_failure(name_, "PR_SET_SECCOMP", errno);
    return false;
  }
  g_threads.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool current_thread_filtered() noexcept { return t_filter != nullptr; }

void set_thread_filters_enabled(bool enabled) noexcept {
  g_enabled.store(enabled, std::memory_order_relaxed);
}

bool thread_filters_enabled() noexcept { return g_enabled.load(std::memory_order_relaxed); }

ThreadFilterStats thread_filter_stats() {
  ThreadFilterStats s;
  s.enabled = thread_filters_enabled();
  s.threads_filtered = g_threads.load(std::memory_order_relaxed);
  s.install_failures = g_failures.load(std::memory_order_relaxed);
  for (size_t nr = 0; nr < g_denied.size(); ++nr) {
    const uint64_t count = g_denied[nr].load(std::memory_order_relaxed);
    if (count == 0) continue;
    s.denied_calls += count;
    DeniedSystemCall d;
    d.number = static_cast<int>(nr);
    d.count = count;
    if (nr == g_denied.size() - 1) {
      d.number = -1;
      d.name = "other (numbers from " + std::to_string(nr) + ", or negative)";
    } else {
      char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, d.number);
      d.name = name != nullptr ? name : "#" + std::to_string(nr);
      std::free(name);
    }
    s.denied.push_back(std::move(d));
  }
  return s;
}

}  // namespace forkvm
