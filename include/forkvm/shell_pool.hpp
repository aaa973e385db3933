// The process-wide pool of VM shells: everything of a VM that does not depend on the image it
// will run (the KVM VM with its TSS, memory slots over reserved address space, irqchip and PIT;
// the legacy devices; the vCPUs, created but not started), built ahead of time on a background
// thread. Every VM made from an image (Template::fork, Sandbox::fork, Sandbox::restore, the
// children of Sandbox::make_template, Vm::prepare/restore) takes a shell of its machine's shape
// when one is ready, maps the image into it and adds its virtio devices; otherwise it builds
// the shell inline and says so (VmBuildPhases::from_shell, ForkTimings::vm).
//
// Shapes are learned, not declared: a shape is kept warm once a VM of that shape was made from
// an image, a template of it was opened, or a sandbox of it booted (so its first fork finds a
// shell). A shell costs the host a KVM VM, its vCPU file descriptors and some kernel memory, but
// no guest RAM (its RAM is reserved address space until an image is mapped into it).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace forkvm {

/// How the shell pool is sized and refilled.
struct ShellPoolOptions {
  /// Shells kept ready for each machine shape (vCPUs, RAM size, KVM device). 0 turns the pool
  /// off and drops the shells it holds: every VM is then built inline.
  size_t per_shape = 2;
  /// At most this many shells built per second by the refill thread (0: as fast as it can).
  /// Bounds the pool's share of the host while it refills after a burst.
  double refill_per_second = 0;
  /// Shapes kept warm at once; wanting another drops the least recently used one's shells.
  size_t max_shapes = 4;
};

/// What the shell pool holds and has done since the process started.
struct ShellPoolStats {
  ShellPoolOptions options;
  /// Shells ready now, over all shapes, and the shapes kept warm.
  size_t ready = 0;
  size_t shapes = 0;
  /// VMs that took a shell, and VMs that found none ready and built theirs inline.
  uint64_t taken = 0;
  uint64_t missed = 0;
  /// Shells the refill thread built; shells found dead when taken (their VM no longer answered
  /// KVM, e.g. in a child process after fork()) and destroyed instead of handed out.
  uint64_t built = 0;
  uint64_t discarded_dead = 0;
  /// Failed builds (the refill thread backs off exponentially, 50 ms to 5 s), and the last
  /// failure's message (empty when the last build succeeded).
  uint64_t build_failures = 0;
  std::string last_error;
  /// Mean time the refill thread took per shell, over its last 64 builds: 1 / this is the
  /// rate it refills at when nothing limits it.
  std::chrono::nanoseconds mean_build{};
};

/// Changes the pool's options; takes effect at once (a smaller per_shape drops shells).
/// Thread-safe. Throws ConfigError for a negative or non-finite refill_per_second.
void configure_shell_pool(const ShellPoolOptions& options);
/// The pool's counters and options now. Thread-safe.
ShellPoolStats shell_pool_stats();
/// Waits until every warm shape has per_shape shells ready, or `timeout` passes; true when
/// full. For benchmarks and tests that measure with a warm pool.
bool wait_for_shell_pool(std::chrono::milliseconds timeout);

}  // namespace forkvm
