// forkvm::Template: a frozen sandbox that hands out running copy-on-write children.
//
//   auto tmpl = forkvm::Template::open("snapshots/python");   // verified once, kept mapped
//   auto child = tmpl->fork();                                 // a running Sandbox
//   child->exec({"python3", "-c", "print(1)"});
//
// or from a running sandbox:
//
//   auto tmpl = sandbox->make_template();   // freezes it once; the sandbox keeps running
//   auto a = tmpl->fork(), b = tmpl->fork();
//
// Every child is its own machine: its own copy-on-write view of the template's memory (no
// guest RAM is copied to make it), its own vsock CID and socket, fresh entropy in its kernel
// RNG, the host's wall clock, and optionally its own hostname. Nothing one child writes is
// visible to the template, its parent, or any other child. Thread-safe: many threads may fork
// from one template at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "forkvm/sandbox.hpp"

namespace forkvm {

/// What a Template's pool holds and how its refill thread fares (Template::stats()).
struct TemplateStats {
  /// VMs waiting in the pool right now.
  size_t pooled = 0;
  /// VMs the refill thread prepared, and its tries that failed. After a failure it waits
  /// before the next try, 50 ms at first, doubling up to 5 s, back to 50 ms after a success
  /// (the shell pool's RetryBackoff); forks meanwhile prepare their own VM and report their
  /// own error.
  uint64_t refilled = 0;
  uint64_t refill_failures = 0;
  /// Times the refill thread waited for a child's first exec before replacing the VM its fork
  /// took (TemplateOptions::refill_hold).
  uint64_t refill_holds = 0;
  /// Pooled VMs a fork found stopped (a device worker of theirs failed while they waited: their
  /// devices run from Vm::prepare() on) and discarded instead of handing them out.
  uint64_t discarded = 0;
  /// The last failed try's message; empty when the last try succeeded (or none was made).
  std::string last_refill_error;
  /// TemplateOptions::warm_up: its child answered and taught the image, or why not (empty
  /// when it succeeded, or was not made: no pool, or the image had learned already).
  bool warmed_up = false;
  std::string warm_up_error;
  /// The wait the next failure will get.
  std::chrono::milliseconds next_refill_backoff{};
};

/// An image (snapshot directory or frozen sandbox) that forks running sandboxes.
class Template {
 public:
  /// Opens and verifies the snapshot in `dir` once (state digest, memory digest unless
  /// options.verify_memory is false, every component decoded, the host CPU's features) and
  /// keeps its memory file mapped for the forks. Starts the pool's refill thread when
  /// options.pool_size > 0. Throws SnapshotError, ConfigError, KvmError.
  static std::shared_ptr<Template> open(const std::string& dir, const TemplateOptions& options = {});
  /// A template over an image already in memory (Vm::freeze(); Sandbox::make_template() uses
  /// this). `options.verify_memory` is ignored. Throws ConfigError when the image has no vsock
  /// device (a sandbox needs one) or was taken while secrets were set (VmImage::has_secrets())
  /// and options.allow_secrets is false (open() too), KvmError.
  static std::shared_ptr<Template> from_image(std::shared_ptr<const VmImage> image,
                                              const TemplateOptions& options = {});
  /// Stops the pool (destroying the VMs it holds). Children already forked keep running.
  ~Template();
  Template(const Template&) = delete;
  Template& operator=(const Template&) = delete;

  /// A new running child: a pooled VM (or one prepared now), its state restored, its vCPUs
  /// started, the agent connected (retried within config.boot_timeout) and the child's
  /// identity set (Sandbox::restore describes it). Throws ConfigError, SnapshotError,
  /// KvmError, GuestError, TimeoutError, AgentUnreachableError, or CancelledError when `stop`
  /// was requested; on any failure the child is torn down first.
  std::unique_ptr<Sandbox> fork(const ForkConfig& config = {}, std::stop_token stop = {});

  /// VMs waiting in the pool right now.
  size_t pooled() const;
  /// The pool's counters and the refill thread's last error. Thread-safe.
  TemplateStats stats() const;
  /// The image every child starts from.
  std::shared_ptr<const VmImage> image() const noexcept;

  struct Impl;
  /// Internal: made by open() and Sandbox::make_template().
  explicit Template(std::unique_ptr<Impl> impl);

 private:
  friend struct TemplateTesting;  // sandbox/template_testing.hpp: the e2e tests reach the pool
  std::unique_ptr<Impl> impl_;
};

}  // namespace forkvm
