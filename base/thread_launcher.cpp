#include "base/thread_launcher.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>

#include "base/thread_filter.hpp"

namespace forkvm {
namespace {

/// The process's unfiltered thread that creates threads for filtered ones. Made once and never
/// destroyed (a detached thread waiting on a condition variable): a static destructor joining it
/// at exit could run while a VM is still being torn down on another thread.
class Launcher {
 public:
  Launcher() { std::thread([this] { serve(); }).detach(); }

  std::thread launch(std::function<void()> body) {
    Job job;
    job.body = std::move(body);
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(&job);
    }
    cv_.notify_all();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return job.done; });
    if (job.error) std::rethrow_exception(job.error);
    return std::move(job.thread);
  }

 private:
  struct Job {
    std::function<void()> body;
    std::thread thread;
    std::exception_ptr error;
    bool done = false;
  };

  void serve() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return !jobs_.empty(); });
      Job* job = jobs_.front();
      jobs_.pop_front();
      try {
        job->thread = std::thread(std::move(job->body));
      } catch (...) {
        job->error = std::current_exception();
      }
      job->done = true;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> jobs_;
};

Launcher& launcher() {
  static Launcher* l = new Launcher;  // leaked on purpose (see the class comment)
  return *l;
}

}  // namespace

void prepare_thread_launcher() { launcher(); }

void keep_stack_small() noexcept {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  void* base = nullptr;
  size_t size = 0;
  if (pthread_attr_getstack(&attr, &base, &size) == 0) {
    // [base, base + size) is the usable stack (the guard page lies below base); the frames in
    // use are at the top. Everything from one page below the current frame's page down holds
    // nothing live (a stack grows down; the red zone is 128 bytes). It is advised no-huge, then
    // dropped: pthread_create touched the top of the stack before this thread ran, and where
    // that fault took a huge page spanning this range, the part below is released here
    // (DONTNEED on anonymous memory: zero pages on the next touch, as for a fresh stack).
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(base) + page - 1) & ~(page - 1);
    const uintptr_t here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) & ~(page - 1);
    if (here > lo + page) {
      void* const start = reinterpret_cast<void*>(lo);
      const size_t len = here - page - lo;
      if (madvise(start, len, MADV_NOHUGEPAGE) == 0) madvise(start, len, MADV_DONTNEED);
    }
  }
  pthread_attr_destroy(&attr);
}

std::thread start_thread(std::function<void()> body) {
  auto run = [body = std::move(body)] {
    keep_stack_small();
    body();
  };
  if (!current_thread_filtered()) return std::thread(std::move(run));
  return launcher().launch(std::move(run));
}

}  // namespace forkvm
