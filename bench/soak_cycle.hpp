// The cycle of `forkvm-bench soak` (issue 16 §5), shared with its shortened e2e test
// (tests/e2e/template_fork_test.cpp): a child of one template is forked, runs an exec, round-
// trips a file and is shut down; every K cycles a long-lived parent (the template's first
// child) is changed and forked with Sandbox::fork() and that child does the same.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/soak_report.hpp"
#include "forkvm/fork_config.hpp"
#include "forkvm/sandbox.hpp"
#include "forkvm/template.hpp"

namespace forkvm::bench {

/// How one cycle went.
struct SoakCycleResult {
  /// Template child: fork() call to shutdown() returned; nullopt when it failed.
  std::optional<double> cycle_ms;
  /// The parent round (change, Sandbox::fork, the child's checks, its shutdown), when this
  /// cycle had one and it succeeded.
  std::optional<double> parent_ms;
  std::vector<std::string> errors;   ///< one per failed part ("cycle 7, template child, exec: ...")
};

/// Runs soak cycles against one template. Not thread-safe.
class SoakLoop {
 public:
  /// Forks the long-lived parent from `tmpl` now (throws what Template::fork() throws).
  /// `config` is used for every fork. Every sandbox of the loop makes its temp dir in `tmpl`'s
  /// TemplateOptions::runtime_dir (the parent's forks inherit it): set one to count them apart.
  /// `parent_every` (>= 1): the parent is forked on every cycle whose number + 1 it divides.
  SoakLoop(std::shared_ptr<Template> tmpl, ForkConfig config, unsigned parent_every);
  /// Shuts the parent down.
  ~SoakLoop();
  SoakLoop(const SoakLoop&) = delete;
  SoakLoop& operator=(const SoakLoop&) = delete;

  /// Cycle `cycle` (0-based). Never throws for a failed fork, request or check: those are
  /// in the result's errors (a parent that stopped is replaced by a new child of the template
  /// at the next parent round).
  SoakCycleResult run(unsigned cycle);

  /// Shuts the parent down (idempotent).
  void shutdown();

 private:
  void parent_round(unsigned cycle, SoakCycleResult& out);

  std::shared_ptr<Template> tmpl_;
  ForkConfig config_;
  unsigned parent_every_;
  std::unique_ptr<Sandbox> parent_;
  unsigned generation_ = 0;  ///< how often the parent was changed and forked
};

/// The counters once they are not racing a teardown: waits for the reaper to finish every
/// shutdown (Sandbox::wait_for_teardowns()) and for the shell pool to be full again (at most
/// 60 s), then reads them (read_soak_counters).
SoakCounters settled_soak_counters(const std::string& runtime_dir);

}  // namespace forkvm::bench
