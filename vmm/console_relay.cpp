#include "vmm/console_relay.hpp"

#include <cstdio>
#include <exception>

#include "base/thread_launcher.hpp"

namespace forkvm {

ConsoleRelay::~ConsoleRelay() { stop(); }

void ConsoleRelay::start(std::function<void(std::string_view)> callback) {
  std::lock_guard lock(mu_);
  if (running_ || stopping_ || !callback) return;
  callback_ = std::move(callback);
  // The embedder's code runs on this thread: it is never filtered (start_thread()).
  thread_ = start_thread([this] { run(); });
  running_ = true;
}

void ConsoleRelay::push(std::string_view bytes) noexcept {
  if (bytes.empty()) return;
  {
    std::lock_guard lock(mu_);
    if (!running_ || stopping_ || muted_) return;
    const size_t room = capacity_ - queue_.size();  // queue_ never exceeds capacity_
    const size_t take = bytes.size() < room ? bytes.size() : room;
    try {
      queue_.append(bytes.substr(0, take));
      dropped_ += bytes.size() - take;
    } catch (const std::bad_alloc&) {
      dropped_ += bytes.size();
    }
  }
  cv_.notify_one();
}

void ConsoleRelay::run() {
  std::string batch;
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) return;  // stopping, everything delivered
    // Swap out the whole queue: the vCPU appends to an empty one while the callback runs.
    batch.clear();
    batch.swap(queue_);
    lock.unlock();
    {
      // mute() takes call_mu_ to wait for this call; muted_ is read under it, so no call
      // starts after mute() returned.
      std::lock_guard call(call_mu_);
      bool muted = false;
      {
        std::lock_guard state(mu_);
        muted = muted_;
      }
      try {
        if (!muted) callback_(batch);
      } catch (const std::exception& e) {
        // The embedder's exception must not end the process: reported once, then ignored.
        report_failure(e.what());
      } catch (...) {
        report_failure("an exception that is not a std::exception");
      }
    }
    lock.lock();
    delivered_ += batch.size();
  }
}

void ConsoleRelay::report_failure(const char* what) noexcept {
  {
    std::lock_guard lock(mu_);
    if (callback_failed_) return;
    callback_failed_ = true;
  }
  std::fprintf(stderr, "forkvm: the console callback threw (%s); later throws are not reported\n", what);
}

void ConsoleRelay::stop() noexcept {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ConsoleRelay::mute() noexcept {
  {
    // First: a call that has not started yet sees it and does not start.
    std::lock_guard lock(mu_);
    muted_ = true;
    queue_.clear();
  }
  // Then wait for the call in progress, if any. On the relay's thread the callback itself is
  // muting: call_mu_ is held by this very thread.
  if (thread_.get_id() != std::this_thread::get_id()) std::lock_guard call(call_mu_);
}

uint64_t ConsoleRelay::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

uint64_t ConsoleRelay::delivered() const {
  std::lock_guard lock(mu_);
  return delivered_;
}

}  // namespace forkvm
