#include "vmm/vcpu_thread.hpp"

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstring>

#include "forkvm/errors.hpp"

namespace forkvm {
namespace {

void noop_handler(int) {}

void install_kick_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = noop_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    if (sigaction(vcpu_kick_signal(), &sa, nullptr) != 0) {
      throw Error(std::string("sigaction(vcpu kick signal): ") + std::strerror(errno));
    }
  });
}

}  // namespace

int vcpu_kick_signal() noexcept { return SIGRTMIN; }

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
  thread_ = std::thread([this] { loop(); });
}

void VcpuThread::resume() {
  std::lock_guard lock(mu_);
  if (request_ == Request::kPause) request_ = Request::kRun;
  cv_.notify_all();
}

void VcpuThread::pause() {
  {
    std::lock_guard lock(mu_);
    if (request_ == Request::kStop || finished_) return;
    request_ = Request::kPause;
  }
  kick();
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return parked_ || finished_; });
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

void VcpuThread::loop() {
  // The embedding process may block real-time signals; this thread must receive the kick.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, vcpu_kick_signal());
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);

  for (;;) {
    {
      std::unique_lock lock(mu_);
      while (request_ == Request::kPause) {
        parked_ = true;
        cv_.notify_all();
        cv_.wait(lock);
      }
      parked_ = false;
      if (request_ == Request::kStop) break;
      ++runs_;
    }
    const VcpuExit exit = vcpu_.run();
    const ExitAction action = dispatch(exit, pio_, mmio_);
    if (action == ExitAction::kContinue) {
      // The kernel finishes an I/O or MMIO exit's instruction only on the next KVM_RUN. If
      // this thread is about to park, do that now (without running guest code), so that the
      // state read while paused, e.g. for a snapshot, is consistent (RIP past the OUT).
      bool parking;
      {
        std::lock_guard lock(mu_);
        parking = request_ != Request::kRun;
      }
      if (parking) vcpu_.complete_pending_io();
      continue;
    }
    if (action == ExitAction::kInterrupted) {
      // Clear before re-checking the request under mu_ (see kick()).
      vcpu_.set_immediate_exit(false);
      continue;
    }
    if (observer_) observer_(index_, action, describe(exit));
    break;
  }
  std::lock_guard lock(mu_);
  finished_ = true;
  parked_ = false;
  cv_.notify_all();
}

}  // namespace forkvm
