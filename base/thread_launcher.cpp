#include "base/thread_launcher.hpp"

#include <condition_variable>
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

std::thread start_thread(std::function<void()> body) {
  if (!current_thread_filtered()) return std::thread(std::move(body));
  return launcher().launch(std::move(body));
}

}  // namespace forkvm
