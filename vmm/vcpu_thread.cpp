#include "vmm/vcpu_thread.hpp"

#include <pthread.h>
#include <unistd.h>
#include <signal.h>

#include <cerrno>
#include <cstring>

#include "base/text.hpp"
#include "base/thread_launcher.hpp"
#include "base/vcpu_gs_mark.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/host_threads.hpp"
#include "vmm/vcpu_filter.hpp"

namespace forkvm {
namespace {

void noop_handler(int) {}

/// Guards the kick signal's choice and its one installation.
std::mutex g_kick_mu;
/// The chosen signal; 0 means SIGRTMIN (not a constant expression in glibc).
std::atomic<int> g_kick_signal{0};
/// The signal the handler was installed on, 0 before the first VM started.
int g_kick_installed = 0;

bool is_default(const struct sigaction& sa) noexcept {
  return (sa.sa_flags & SA_SIGINFO) == 0 && sa.sa_handler == SIG_DFL;
}

bool is_ours(const struct sigaction& sa) noexcept {
  return (sa.sa_flags & SA_SIGINFO) == 0 && sa.sa_handler == noop_handler;
}

}  // namespace

// Refuses to replace a disposition the embedding program set (a handler, or SIG_IGN):
// replacing it would silently break the program, and leaving it would break the kicks.
void install_kick_handler() {
  std::lock_guard lock(g_kick_mu);
  if (g_kick_installed != 0) return;
  const int signo = vcpu_kick_signal();
  struct sigaction old {};
  if (sigaction(signo, nullptr, &old) != 0) {
    throw Error("sigaction(vcpu kick signal " + std::to_string(signo) + "): " + errno_text(errno));
  }
  if (!is_default(old) && !is_ours(old)) {
    throw SignalConflictError(
        signo, "the vCPU kick signal " + std::to_string(signo) + " (SIGRTMIN+" +
                   std::to_string(signo - SIGRTMIN) + ") already has a " +
                   ((old.sa_flags & SA_SIGINFO) == 0 && old.sa_handler == SIG_IGN ? "SIG_IGN disposition"
                                                                                  : "handler") +
                   " set by the program: forkvm does not replace it; choose a free real-time signal "
                   "with forkvm::set_vcpu_kick_signal() (forkvm/host_threads.hpp) before the first VM starts");
  }
  struct sigaction sa {};
  sa.sa_handler = noop_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
  if (sigaction(signo, &sa, nullptr) != 0) {
    throw Error("sigaction(vcpu kick signal " + std::to_string(signo) + "): " + errno_text(errno));
  }
  g_kick_installed = signo;
}

int vcpu_kick_signal() noexcept {
  const int s = g_kick_signal.load(std::memory_order_relaxed);
  return s != 0 ? s : SIGRTMIN;
}

void set_vcpu_kick_signal(int signo) {
  if (signo < SIGRTMIN || signo > SIGRTMAX) {
    throw ConfigError("vCPU kick signal " + std::to_string(signo) + ": not a real-time signal (" +
                      std::to_string(SIGRTMIN) + ".." + std::to_string(SIGRTMAX) + ")");
  }
  std::lock_guard lock(g_kick_mu);
  if (g_kick_installed != 0 && g_kick_installed != signo) {
    throw InvalidStateError("vCPU kick signal: the handler is already installed on signal " +
                            std::to_string(g_kick_installed) + " (a VM has started)");
  }
  g_kick_signal.store(signo, std::memory_order_relaxed);
}

VcpuThread::VcpuThread(uint32_t index, VcpuFd vcpu, const Bus& pio, const Bus& mmio,
                       StopObserver observer)
    : index_(index), vcpu_(std::move(vcpu)), pio_(pio), mmio_(mmio), observer_(std::move(observer)) {}

VcpuThread::~VcpuThread() { stop(); }

void VcpuThread::start(bool running) {
  install_kick_handler();
  {
    std::lock_guard lock(mu_);
    request_ = running ? Request::kRun : Request::kPause;
  }
  thread_ = start_thread([this] { loop(); });
}

void VcpuThread::resume() {
  std::lock_guard lock(mu_);
  if (request_ == Request::kPause) request_ = Request::kRun;
  cv_.notify_all();
}

bool VcpuThread::pause(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mu_);
    if (request_ == Request::kStop || finished_) return true;
    request_ = Request::kPause;
  }
  kick();
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return parked_ || finished_; });
}

void VcpuThread::request_stop() {
  {
    std::lock_guard lock(mu_);
    request_ = Request::kStop;
    cv_.notify_all();
  }
  kick();
}

void VcpuThread::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
}

VcpuSample VcpuThread::sample() const {
  VcpuSample s;
  s.index = index_;
  s.thread_id = tid_.load(std::memory_order_relaxed);
  {
    std::lock_guard lock(mu_);
    s.finished = finished_;
  }
  // Each read on its own: a vCPU whose state KVM cannot give (e.g. after an entry failure)
  // still reports what it can.
  try { s.regs = vcpu_.get_regs(); } catch (const Error&) {}
  try { s.sregs = vcpu_.get_sregs(); } catch (const Error&) {}
  try { s.events = vcpu_.get_vcpu_events(); } catch (const Error&) {}
  s.counts = history_.counts();
  s.recent = history_.recent();
  return s;
}

bool VcpuThread::finished() const {
  std::lock_guard lock(mu_);
  return finished_;
}

void VcpuThread::kick() {
  // Order matters: the request was published under mu_ first, then immediate_exit is set,
  // then the signal is sent. Whatever point the thread is at, it either sees the request when
  // it next takes mu_, or enters KVM_RUN with immediate_exit set (returns EINTR at once), or is
  // inside KVM_RUN and the signal interrupts it.
  vcpu_.set_immediate_exit(true);
  if (thread_.joinable()) pthread_kill(thread_.native_handle(), vcpu_kick_signal());
}

namespace {

/// An exit whose instruction KVM finishes only on the next KVM_RUN (api.rst, KVM_RUN).
bool completes_on_next_run(const VcpuExit& exit) noexcept {
  return std::holds_alternative<IoIn>(exit) || std::holds_alternative<IoOut>(exit) ||
         std::holds_alternative<MmioRead>(exit) || std::holds_alternative<MmioWrite>(exit);
}

/// Follow-on exits finish_pending_instruction() handles before it parks anyway: an MMIO access
/// has at most a few fragments; a rep string I/O one exit per page-bounded chunk, so a hostile
/// guest's huge count must not keep its vCPU from ever parking.
constexpr int kMaxFollowOnExits = 4096;

}  // namespace

void VcpuThread::loop() {
  // The embedding process may block real-time signals; this thread must receive the kick.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, vcpu_kick_signal());
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  // Named and numbered for diagnostics: gdb, /proc and KVM's trace events show this thread.
  const std::string name = "forkvm-vcpu" + std::to_string(index_);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  tid_.store(static_cast<int>(::gettid()), std::memory_order_relaxed);
  // A lab diagnostic, off unless FORKVM_DEBUG_VCPU_GS_BASE is set (vcpu_gs_mark.hpp).
  apply_vcpu_gs_mark();
  // Last: everything above is outside the vCPU filter's list (thread_filter.hpp).
  vcpu_thread_filter().install();

  // The last exit was an I/O or MMIO access: its instruction is unfinished until the next
  // KVM_RUN (RIP still on the OUT, an IN's register not loaded).
  bool instruction_pending = false;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (request_ == Request::kPause && instruction_pending) {
        // Finish it before parking, so that the state read while paused (snapshot, freeze) is
        // consistent. Decided here, under mu_ and right before parking: a pause request that
        // arrives after this check finds the instruction already finished.
        lock.unlock();
        instruction_pending = false;
        if (!finish_pending_instruction()) break;
        continue;
      }
      while (request_ == Request::kPause) {
        parked_ = true;
        cv_.notify_all();
        cv_.wait(lock);
      }
      parked_ = false;
      if (request_ == Request::kStop) break;
    }
    history_.record_run();
    const VcpuExit exit = vcpu_.run();
    history_.record(exit);
    // Any KVM_RUN, even one that returns EINTR at once, first finishes the previous instruction.
    instruction_pending = false;
    const ExitAction action = handle(exit);
    if (action == ExitAction::kContinue) {
      instruction_pending = completes_on_next_run(exit);
      continue;
    }
    if (action == ExitAction::kInterrupted) {
      // Clear before re-checking the request under mu_ (see kick()).
      vcpu_.set_immediate_exit(false);
      continue;
    }
    report_stop(exit, action);
    break;
  }
  std::lock_guard lock(mu_);
  finished_ = true;
  parked_ = false;
  cv_.notify_all();
}

bool VcpuThread::finish_pending_instruction() {
  // KVM_RUN with immediate_exit: KVM finishes the instruction and returns EINTR without running
  // guest code, unless finishing it needs another exit (the next fragment of a split MMIO
  // access, the next chunk of a rep string I/O). Such an exit is dispatched like any other
  // (dropping it would hand the guest stale data on resume) and KVM_RUN repeats. A kick that
  // sets immediate_exit meanwhile is not lost: its request is re-checked under mu_ afterwards.
  for (int i = 0; i < kMaxFollowOnExits; ++i) {
    vcpu_.set_immediate_exit(true);
    history_.record_run();
    const VcpuExit exit = vcpu_.run();
    vcpu_.set_immediate_exit(false);
    if (std::holds_alternative<Interrupted>(exit)) return true;
    history_.record(exit);
    const ExitAction action = handle(exit);
    if (action == ExitAction::kContinue) continue;
    report_stop(exit, action);
    return false;
  }
  return true;
}

ExitAction VcpuThread::handle(const VcpuExit& exit) noexcept {
  try {
    return dispatch(exit, pio_, mmio_);
  } catch (const std::exception& e) {
    note_device_failure(exit, e.what());
  } catch (...) {
    note_device_failure(exit, "an exception that is not a std::exception");
  }
  return ExitAction::kDeviceError;
}

void VcpuThread::note_device_failure(const VcpuExit& exit, const char* what) noexcept {
  try {
    device_failure_ = std::string("a device failed handling ") + describe(exit) + ": " + what;
  } catch (...) {
    device_failure_.clear();  // report_stop() says so without the details
  }
}

void VcpuThread::report_stop(const VcpuExit& exit, ExitAction action) noexcept {
  if (!observer_) return;
  try {
    std::string detail;
    if (action == ExitAction::kDeviceError) {
      detail = device_failure_.empty() ? "a device failed (out of memory describing it)" : device_failure_;
    } else {
      detail = describe(exit);
    }
    // A triple fault or a fatal exit: say where the vCPU was (this thread is outside KVM_RUN,
    // so its state can be read here).
    if (std::holds_alternative<Shutdown>(exit) || action == ExitAction::kFatal) {
      detail += "\n" + format_vcpu(sample());
    }
    observer_(index_, action, detail);
  } catch (...) {
    // Out of memory building the text: the stop is still reported, without the text (an empty
    // string allocates nothing), so the VM records how it ended and wait() returns.
    try {
      observer_(index_, action, std::string());
    } catch (...) {
      // The observer itself failed with an empty detail: nothing is left to report with.
    }
  }
}

}  // namespace forkvm
