#include "sandbox/reaper.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <system_error>
#include <utility>

namespace forkvm::sandbox {

Reaper& Reaper::instance() {
  // Never destroyed: a sandbox destroyed during static destruction may still hand its remains
  // over (they are then torn down inline). The queue is drained at exit by the handler below,
  // registered after whatever the teardowns need (the KVM host, made by the first VM) exists,
  // so it runs before that is destroyed.
  static Reaper* const reaper = [] {
    auto* r = new Reaper();
    std::atexit([] { instance().stop(); });
    return r;
  }();
  return *reaper;
}

Reaper::Reaper() {
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "forkvm: no reaper thread (%s): teardowns run on the caller's thread\n",
                 e.what());
    stopping_ = true;
  }
}

void Reaper::tear_down(Remains& r) noexcept {
  if (r.finish) {
    try {
      r.finish();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "forkvm: finishing a teardown: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "forkvm: finishing a teardown: unknown exception\n");
    }
    r.finish = nullptr;  // drops what it held (possibly the last owner of a sandbox)
  }
  r.vm.reset();  // closes the VM's descriptors and unmaps its memory: the slow part
  if (!r.temp_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(r.temp_dir, ec);
    r.temp_dir.clear();
  }
}

void Reaper::submit(Remains remains) noexcept {
  {
    std::unique_lock lock(mu_);
    // Back-pressure: a caller beyond the bound waits until the reaper made room.
    changed_.wait(lock, [&] { return stopping_ || queue_.size() < kMaxPending; });
    if (!stopping_) {
      queue_.push_back(std::move(remains));
      ++submitted_;
      changed_.notify_all();
      return;
    }
  }
  tear_down(remains);  // no reaper thread (any more): inline
}

void Reaper::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything done
    Remains r = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    changed_.notify_all();  // room for a waiting submit()
    lock.unlock();
    tear_down(r);
    lock.lock();
    busy_ = false;
    ++finished_;
    changed_.notify_all();  // drain() waiters
  }
}

void Reaper::drain() {
  std::unique_lock lock(mu_);
  const uint64_t target = submitted_;
  changed_.wait(lock, [&] { return finished_ >= target; });
}

std::size_t Reaper::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size() + (busy_ ? 1 : 0);
}

uint64_t Reaper::finished() const {
  std::lock_guard lock(mu_);
  return finished_;
}

void Reaper::stop() noexcept {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;  // run() finishes the queue first
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace forkvm::sandbox
