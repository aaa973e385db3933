// The shell pool (vmm/shell_pool.hpp): building shells, handing them out, refilling.
#include "vmm/shell_pool.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "base/fd.hpp"
#include "base/retry_backoff.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kBuildTimesKept = 64;

/// A shell whose VM still answers KVM. kvm_vm_ioctl() refuses every call with EIO once the VM
/// is dead (kvm->vm_dead, after an internal KVM error) or when called from another process
/// than the one that created it (a child after fork()); a descriptor that is no longer a VM
/// fails too.
bool alive(const Vm::Impl& shell) { return shell.vm && shell.vm->check_extension(KVM_CAP_IRQCHIP) > 0; }

}  // namespace

std::unique_ptr<Vm::Impl> build_shell(const ShellShape& shape) {
  VmConfig config;
  config.vcpus = shape.vcpus;
  config.memory_mib = shape.memory_mib;
  config.kvm_device = shape.kvm_device;
  const auto t0 = Clock::now();
  auto shell = std::make_unique<Vm::Impl>(config, GuestMemory::reserve(shape.memory_mib << 20));
  shell->phases.memory += Clock::now() - t0;
  shell->kvm = shape.kvm;
  shell->build_shell_machine();
  shell->create_vcpu_threads();
  return shell;
}

ShellPool& ShellPool::instance() {
  // Made on the first call, which comes after the caller got its KvmHost (ShellShape::kvm), so
  // the pool is destroyed (its thread joined) before the KvmHost table at exit.
  static ShellPool pool;
  return pool;
}

ShellPool::~ShellPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ShellPool::Warm& ShellPool::warm_locked(const ShellShape& shape, std::vector<Shell>& dropped) {
  const auto now = Clock::now();
  for (Warm& w : warm_) {
    if (w.shape.same_as(shape)) {
      w.last_used = now;
      return w;
    }
  }
  warm_.push_back(Warm{shape, {}, now});
  trim_locked(dropped);
  // trim_locked evicts the least recently used, never the entry just made (the newest), unless
  // max_shapes is 0, which configure() refuses.
  for (Warm& w : warm_) {
    if (w.shape.same_as(shape)) return w;
  }
  throw Error("shell pool: a shape evicted as it was added");  // unreachable (see above)
}

void ShellPool::trim_locked(std::vector<Shell>& dropped) {
  while (warm_.size() > options_.max_shapes) {
    auto oldest = std::min_element(warm_.begin(), warm_.end(), [](const Warm& a, const Warm& b) {
      return a.last_used < b.last_used;
    });
    for (Shell& s : oldest->ready) dropped.push_back(std::move(s));
    warm_.erase(oldest);
  }
  for (Warm& w : warm_) {
    while (w.ready.size() > options_.per_shape) {
      dropped.push_back(std::move(w.ready.back()));
      w.ready.pop_back();
    }
  }
}

void ShellPool::start_locked() {
  if (!thread_.joinable() && !stopping_ && options_.per_shape > 0) {
    thread_ = std::thread([this] { refill_loop(); });
  }
}

ShellPool::Warm* ShellPool::short_shape_locked() {
  // The emptiest shape first: after a burst on one template its shells come back first.
  Warm* best = nullptr;
  for (Warm& w : warm_) {
    if (w.ready.size() < options_.per_shape && (best == nullptr || w.ready.size() < best->ready.size())) {
      best = &w;
    }
  }
  return best;
}

bool ShellPool::full_locked() const {
  return std::all_of(warm_.begin(), warm_.end(),
                     [&](const Warm& w) { return w.ready.size() >= options_.per_shape; });
}

std::unique_ptr<Vm::Impl> ShellPool::take(const ShellShape& shape) {
  std::vector<Shell> dropped;  // destroyed after the lock is released (closing a VM takes ms)
  Shell got;
  {
    std::lock_guard lock(mu_);
    Warm& w = warm_locked(shape, dropped);
    while (!w.ready.empty()) {
      Shell s = std::move(w.ready.front());
      w.ready.pop_front();
      if (alive(*s)) {
        got = std::move(s);
        break;
      }
      ++counts_.discarded_dead;
      dropped.push_back(std::move(s));
    }
    if (got) {
      ++counts_.taken;
    } else {
      ++counts_.missed;
    }
    start_locked();
  }
  cv_.notify_all();
  return got;
}

void ShellPool::want(const ShellShape& shape) {
  std::vector<Shell> dropped;
  {
    std::lock_guard lock(mu_);
    warm_locked(shape, dropped);
    start_locked();
  }
  cv_.notify_all();
}

void ShellPool::configure(const ShellPoolOptions& options) {
  if (!std::isfinite(options.refill_per_second) || options.refill_per_second < 0) {
    throw ConfigError("ShellPoolOptions::refill_per_second must be a finite number >= 0");
  }
  if (options.max_shapes == 0) {
    throw ConfigError("ShellPoolOptions::max_shapes must be at least 1 (per_shape = 0 turns "
                      "the pool off)");
  }
  std::vector<Shell> dropped;
  {
    std::lock_guard lock(mu_);
    options_ = options;
    trim_locked(dropped);
    if (!warm_.empty()) start_locked();
  }
  cv_.notify_all();
}

ShellPoolStats ShellPool::stats() const {
  std::lock_guard lock(mu_);
  ShellPoolStats s = counts_;
  s.options = options_;
  for (const Warm& w : warm_) s.ready += w.ready.size();
  s.shapes = warm_.size();
  if (!build_times_.empty()) {
    std::chrono::nanoseconds sum{};
    for (const auto& t : build_times_) sum += t;
    s.mean_build = sum / static_cast<int64_t>(build_times_.size());
  }
  return s;
}

bool ShellPool::wait_full(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return full_locked(); });
}

size_t ShellPool::break_shells_for_test(const ShellShape& shape) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (Warm& w : warm_) {
    if (!w.shape.same_as(shape)) continue;
    for (const Shell& s : w.ready) {
      const Fd null(open("/dev/null", O_RDWR | O_CLOEXEC));
      if (null && dup2(null.get(), s->vm->fd()) >= 0) ++n;
    }
  }
  return n;
}

void ShellPool::refill_loop() {
  std::unique_lock lock(mu_);
  RetryBackoff backoff;
  Clock::time_point next_allowed{};
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || short_shape_locked() != nullptr; });
    if (stopping_) return;
    if (options_.refill_per_second > 0 && Clock::now() < next_allowed) {
      cv_.wait_until(lock, next_allowed, [&] { return stopping_; });
      continue;
    }
    const ShellShape shape = short_shape_locked()->shape;
    lock.unlock();
    const auto t0 = Clock::now();
    Shell shell;
    std::string error;
    try {
      shell = build_shell(shape);
    } catch (const std::exception& e) {
      error = e.what();
    }
    const auto took = Clock::now() - t0;
    lock.lock();
    if (options_.refill_per_second > 0) {
      next_allowed = t0 + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(1.0 / options_.refill_per_second));
    }
    if (!shell) {
      // A host short of memory or descriptors: retry later, not in a tight loop; the VMs that
      // miss meanwhile build inline and report their own error.
      ++counts_.build_failures;
      if (counts_.last_error != error) std::fprintf(stderr, "forkvm: shell pool: %s\n", error.c_str());
      counts_.last_error = error;
      cv_.wait_for(lock, backoff.failed(), [&] { return stopping_; });
      continue;
    }
    backoff.succeeded();
    counts_.last_error.clear();
    ++counts_.built;
    build_times_.push_back(took);
    if (build_times_.size() > kBuildTimesKept) build_times_.pop_front();
    Warm* home = nullptr;
    for (Warm& w : warm_) {
      if (w.shape.same_as(shape)) home = &w;
    }
    if (home != nullptr && home->ready.size() < options_.per_shape) {
      home->ready.push_back(std::move(shell));
      cv_.notify_all();  // wait_full()
    } else {
      lock.unlock();  // the shape went cold or the pool shrank meanwhile
      shell.reset();
      lock.lock();
    }
  }
}

void configure_shell_pool(const ShellPoolOptions& options) { ShellPool::instance().configure(options); }

ShellPoolStats shell_pool_stats() { return ShellPool::instance().stats(); }

bool wait_for_shell_pool(std::chrono::milliseconds timeout) {
  return ShellPool::instance().wait_full(timeout);
}

}  // namespace forkvm
