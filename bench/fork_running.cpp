#include "bench/fork_running.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "bench/fork_common.hpp"
#include "bench/fork_options.hpp"
#include "bench/fork_report.hpp"
#include "bench/proc_status.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/sandbox.hpp"
#include "forkvm/template.hpp"

namespace forkvm::bench {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

double mib(uint64_t bytes) { return static_cast<double>(bytes) / kMiB; }
bool in_lab() { return std::getenv("FORKVM_IN_KVM_LAB") != nullptr; }

/// The image of one more freeze of `box` (Sandbox::make_template()): what its memory image
/// holds above the base right now.
struct ImageStats {
  size_t layers = 0;
  uint64_t overlay_bytes = 0;
  double make_template_ms = 0;
};

ImageStats image_now(Sandbox& box) {
  const auto t0 = Clock::now();
  const std::shared_ptr<Template> t = box.make_template();
  ImageStats s;
  s.make_template_ms = ms_since(t0);
  s.layers = t->image()->memory_layers();
  s.overlay_bytes = t->image()->overlay_bytes();
  return s;
}

/// `n` forks of `root`, each measured, exec'd in and torn down; then the root's image.
ReportSection repeated_forks(Sandbox& root, const ForkRunningOptions& o) {
  ForkSeries s;
  std::vector<double> parent_written, parent_exec, child_private;
  for (unsigned i = 0; i < o.n; ++i) {
    const uint64_t written = root.memory_usage().private_bytes;
    ForkedChild c = fork_and_exec_retry([&root] { return root.fork(); }, s.failures);
    s.add(c);
    parent_written.push_back(mib(written));
    {
      // The parent's first request after its fork, on the connection it had all along.
      const auto t0 = Clock::now();
      root.exec({"true"});
      parent_exec.push_back(to_ms(Clock::now() - t0));
    }
    child_private.push_back(mib(c.sandbox->memory_usage().private_bytes));
    double reaped = 0;  // waited for, so the reaper never overlaps the next fork
    s.teardown.push_back(destroy_timed(std::move(c.sandbox), &reaped));
    s.teardown_reaped.push_back(reaped);
    std::fprintf(stderr, "  fork %u/%u: freeze %.2f  vCPUs ready %.2f  agent ready %.2f ms\n", i + 1,
                 o.n, s.freeze.back(), s.to_vcpus_ready.back(), s.to_ready.back());
  }
  const ImageStats img = image_now(root);

  ReportSection sec;
  sec.key = "running_fork";
  sec.title = "Sandbox::fork() of a running sandbox, " + std::to_string(o.n) + " times (ms)";
  sec.notes.push_back("each fork freezes the parent (pause, capture, copy the pages it wrote since "
                      "its previous freeze into a new layer; the first freeze of a booted sandbox "
                      "copies nothing: its memfd becomes the base) and starts the child from that "
                      "image; then exec([\"true\"]) in the child and its teardown (not in the fork "
                      "time)");
  sec.notes.push_back("fork() -> vCPUs ready includes the freeze; the parent keeps its agent "
                      "connection (parent's exec = its first exec([\"true\"]) after the fork, "
                      "after the child's)");
  if (s.failures.count() > 0) sec.notes.push_back(s.failures.note(o.n + s.failures.count()));
  add_fork_rows(sec, "fork", "fork() -> child's vCPUs ready", s);
  sec.rows.push_back({"to_ready", "fork() -> child's agent ready", "ms", summarize(s.to_ready)});
  sec.rows.push_back({"agent_connect", "  agent connect (accept, greeting)", "ms",
                      summarize(s.agent_connect)});
  sec.rows.push_back({"identity", "  identity (entropy, clock)", "ms", summarize(s.identity)});
  sec.rows.push_back({"parent_exec", "parent's exec after the fork", "ms",
                      summarize(parent_exec)});
  sec.rows.push_back({"fork_call", "fork() call -> returned", "ms", summarize(s.fork_call)});
  sec.rows.push_back({"exec", "child's first exec", "ms", summarize(s.exec)});
  sec.rows.push_back({"to_exec", "fork() call -> exec answered", "ms", summarize(s.to_exec)});
  sec.rows.push_back({"teardown", "child teardown (off the fork path)", "ms", summarize(s.teardown)});
  sec.rows.push_back({"teardown_reaped", "  until reaped", "ms", summarize(s.teardown_reaped)});
  sec.rows.push_back({"parent_written_mib", "parent's written pages at a fork", "MiB",
                      summarize(parent_written)});
  sec.rows.push_back({"child_private_mib", "child's private pages after exec", "MiB",
                      summarize(child_private)});
  sec.notes.push_back("parent's written pages = Sandbox::memory_usage().private_bytes just before "
                      "fork(): what that freeze copies into the new layer");
  sec.values.push_back({"first_freeze_ms", "first fork: freeze (booted RAM becomes the base)", "ms",
                        s.freeze.front(), true});
  sec.values.push_back({"first_to_vcpus_ready_ms", "first fork: fork() -> vCPUs ready", "ms",
                        s.to_vcpus_ready.front(), true});
  sec.notes.push_back("the parent's image after the " + std::to_string(o.n) +
                      " forks: one more freeze (make_template(), " +
                      std::to_string(static_cast<long>(img.make_template_ms)) +
                      " ms), its VmImage's layers above the base (merged past a few) and their "
                      "bytes");
  sec.values.push_back({"image_layers", "parent's image: overlay layers", "",
                        static_cast<double>(img.layers), true});
  sec.values.push_back({"image_overlay_mib", "parent's image: overlay (copied pages)", "MiB",
                        mib(img.overlay_bytes), true});
  sec.values.push_back({"ram_mib", "parent's RAM", "MiB", static_cast<double>(o.memory_mib), true});
  sec.values.push_back({"overlay_percent_of_ram", "parent's image: overlay / RAM", "%",
                        100.0 * mib(img.overlay_bytes) / o.memory_mib, true});
  return sec;
}

/// One level of the chain (level k is a fork of level k-1; level 0 is the booted sandbox).
struct Level {
  double parent_written_mib = 0;
  double freeze_ms = 0, to_vcpus_ready_ms = 0, to_ready_ms = 0, fork_call_ms = 0, exec_ms = 0;
  double child_private_mib = 0;
  bool freeze_logged = false;  // the freeze read the dirty and write logs, not pagemap
  ImageStats image;
  double teardown_ms = 0;
};

std::string random_bytes(size_t n) {
  std::mt19937_64 rng(0x5eedf00dULL);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    for (size_t b = 0; b < 8; ++b) s[i + b] = static_cast<char>(v >> (8 * b));
  }
  return s;
}

ReportSection fork_chain(Sandbox& root, const ForkRunningOptions& o) {
  const std::string payload = random_bytes(static_cast<size_t>(o.write_mib) << 20);
  std::vector<std::unique_ptr<Sandbox>> boxes;
  std::vector<Level> levels(o.depth);
  ForkFailures failures;
  Sandbox* parent = &root;
  for (unsigned k = 0; k < o.depth; ++k) {
    Level& l = levels[k];
    if (!payload.empty()) parent->write_file("/tmp/forkvm-bench-level-" + std::to_string(k), payload);
    l.parent_written_mib = mib(parent->memory_usage().private_bytes);
    ForkedChild c = fork_and_exec_retry([parent] { return parent->fork(); }, failures);
    const ForkTimings& t = c.sandbox->fork_timings();
    l.freeze_ms = to_ms(t.freeze);
    l.freeze_logged = t.freeze_logged;
    l.to_vcpus_ready_ms = to_ms(t.to_vcpus_ready);
    l.to_ready_ms = to_ms(t.to_ready);
    l.fork_call_ms = c.fork_call_ms;
    l.exec_ms = c.exec_ms;
    l.child_private_mib = mib(c.sandbox->memory_usage().private_bytes);
    boxes.push_back(std::move(c.sandbox));
    parent = boxes.back().get();
    std::fprintf(stderr, "  level %u/%u: parent wrote %.2f MiB, freeze %.2f (%s)  vCPUs ready %.2f ms\n",
                 k + 1, o.depth, l.parent_written_mib, l.freeze_ms,
                 l.freeze_logged ? "logs" : "pagemap scan", l.to_vcpus_ready_ms);
  }
  // Every level, still alive, frozen once more to read its image (ancestors' layers + its own
  // pages); then the teardown, deepest first.
  for (unsigned k = 0; k < o.depth; ++k) levels[k].image = image_now(*boxes[k]);
  for (unsigned k = o.depth; k-- > 0;) levels[k].teardown_ms = destroy_timed(std::move(boxes[k]));

  ReportSection sec;
  sec.key = "fork_chain";
  sec.title = "chain of Sandbox::fork(): each level a fork of the one above, " +
              std::to_string(o.depth) + " deep (" + std::to_string(o.memory_mib) + " MiB RAM)";
  sec.notes.push_back("before it is forked, each parent (level 0: the booted sandbox, already "
                      "forked above) writes " + std::to_string(o.write_mib) +
                      " MiB of random bytes to a file in its RAM /tmp");
  sec.notes.push_back("written = the parent's private pages just before fork() (what its freeze "
                      "copies); child priv = the child's after its exec; layers/overlay = the "
                      "VmImage of one more freeze (make_template()) of that level after the chain "
                      "was built: ancestors' layers plus its own pages; teardown deepest first");
  sec.notes.push_back("logs = 1: the freeze found the written pages in KVM's dirty log and the "
                      "write log of the VMM's own writes (a parent made from an image); 0: by "
                      "scanning the RAM's pagemap (level 1's parent is the booted sandbox)");
  sec.notes.push_back("overlay counts a page once per layer holding it; past a few layers they are "
                      "merged (topmost wins), so a page written at several levels then counts "
                      "once and the overlay can shrink from one level to the next");
  sec.notes.push_back("written is every page the parent wrote since its previous freeze, not only "
                      "the file's: also what receiving the file and its exec after that "
                      "freeze touched (see 'parent's written pages at a fork' above)");
  if (failures.count() > 0) {
    sec.notes.push_back(failures.note(o.depth + failures.count()) +
                        " (a retried level's 'written' was read before the failed try)");
  }
  ReportTable tab;
  tab.key = "levels";
  tab.columns = {{"level", "level", ""},
                 {"parent_written_mib", "written", "MiB"},
                 {"freeze_ms", "freeze", "ms"},
                 {"freeze_logged", "logs", ""},
                 {"to_vcpus_ready_ms", "vCPUs ready", "ms"},
                 {"to_ready_ms", "agent ready", "ms"},
                 {"fork_call_ms", "fork() call", "ms"},
                 {"exec_ms", "exec", "ms"},
                 {"child_private_mib", "child priv", "MiB"},
                 {"image_layers", "layers", ""},
                 {"image_overlay_mib", "overlay", "MiB"},
                 {"teardown_ms", "teardown", "ms"}};
  std::vector<double> freeze, written;
  for (unsigned k = 0; k < o.depth; ++k) {
    const Level& l = levels[k];
    tab.rows.push_back({static_cast<double>(k + 1), l.parent_written_mib, l.freeze_ms,
                        l.freeze_logged ? 1.0 : 0.0, l.to_vcpus_ready_ms, l.to_ready_ms, l.fork_call_ms, l.exec_ms,
                        l.child_private_mib, static_cast<double>(l.image.layers),
                        mib(l.image.overlay_bytes), l.teardown_ms});
    freeze.push_back(l.freeze_ms);
    written.push_back(l.parent_written_mib);
  }
  sec.tables.push_back(std::move(tab));
  sec.rows.push_back({"freeze", "freeze per level", "ms", summarize(freeze)});
  sec.rows.push_back({"written_mib", "pages copied per level (written)", "MiB", summarize(written)});
  const Summary w = summarize(written);
  sec.values.push_back({"max_written_percent_of_ram", "largest copy at one level / RAM", "%",
                        100.0 * w.max / o.memory_mib, true});
  sec.values.push_back({"deepest_overlay_percent_of_ram", "deepest level's overlay / RAM", "%",
                        100.0 * mib(levels.back().image.overlay_bytes) / o.memory_mib, true});
  return sec;
}

int run(const ForkRunningOptions& o) {
  const FdLimits fd_limits = raise_fd_limit();
  const std::string dir = o.image_dir.empty() ? std::string(FORKVM_BENCH_IMAGE_DIR) : o.image_dir;
  const SandboxConfig c = image_sandbox_config(dir, o.vcpus, o.memory_mib);
  const auto t0 = Clock::now();
  auto root = Sandbox::create(c);
  const double boot_ms = ms_since(t0);
  if (!root->exec({"true"}).ok()) throw Error("exec [\"true\"] in the booted sandbox failed");
  std::fprintf(stderr, "  booted in %.1f ms\n", boot_ms);

  Report r;
  r.header = {
      "forkvm-bench fork-running: Sandbox::fork() of a sandbox booted from " + dir + " (" +
          std::to_string(o.vcpus) + " vCPU, " + std::to_string(o.memory_mib) + " MiB)",
      "  fork latency = fork() call -> the child's vCPUs are ready to run (ForkTimings::"
      "to_vcpus_ready, the parent's freeze included), by phase; times in ms",
      fd_limit_line(fd_limits),
      in_lab() ? "  RUNNING IN KVM-LAB (QEMU-TCG, nested KVM): absolute times are 30-100x bare "
                 "metal; only the ratios mean something."
               : "  Under kvm-lab absolute times are 30-100x bare metal: compare only ratios.",
  };
  r.setup = {{"image_dir", dir}, {"vcpus", o.vcpus}, {"memory_mib", o.memory_mib}, {"n", o.n},
             {"depth", o.depth}, {"write_mib", o.write_mib}, {"boot_ms", boot_ms},
             {"fd_limit_soft", fd_limits.soft}, {"fd_limit_hard", fd_limits.hard},
             {"fd_limit_soft_before", fd_limits.soft_before}, {"in_kvm_lab", in_lab()}};
  r.sections.push_back(repeated_forks(*root, o));
  if (o.depth > 0) r.sections.push_back(fork_chain(*root, o));
  root->shutdown();
  if (o.json) std::printf("%s\n", render_json(r).dump(2).c_str());
  else std::printf("%s", render_text(r).c_str());
  return 0;
}

}  // namespace

int fork_running_bench(std::span<char* const> args) {
  return run_subcommand("fork-running", args, kForkRunningUsage, parse_fork_running_options, run);
}

}  // namespace forkvm::bench
