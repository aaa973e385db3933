#include "bench/fork_stress.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>

#include <nlohmann/json.hpp>

#include "base/text.hpp"
#include "bench/fork_common.hpp"
#include "bench/fork_options.hpp"
#include "bench/fork_stress_options.hpp"
#include "bench/host_symbols.hpp"
#include "bench/kvm_trace.hpp"
#include "bench/stats.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/sandbox_errors.hpp"
#include "forkvm/vm.hpp"

namespace forkvm::bench {
namespace {

/// How one path went.
struct PathResult {
  StressPath path{};
  unsigned attempts = 0, ok = 0, failed = 0;
  std::vector<double> to_ready_ms;  ///< fork() call -> returned, for the forks that worked
  double seconds = 0;
  /// Image pages that changed while the path ran (-1: not checked, e.g. Sandbox::fork chains,
  /// whose images are internal to each fork).
  long changed_pages = -1;
  std::vector<std::string> reports;  ///< files written for failures
  std::string setup_error;           ///< the path could not be set up (counted as one failure)
  unsigned parents_failed = 0;       ///< fresh-* paths: parents whose boot or freeze failed
};

/// A directory for snapshots under $TMPDIR, not --out: the snapshot writer renames with
/// RENAME_NOREPLACE, which a 9p share (kvm-lab's --out) refuses.
std::string scratch_path(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp != nullptr ? tmp : "/tmp") + "/forkvm-stress-" + name + "-" +
         std::to_string(::getpid());
}

/// Like the e2e tests' parents: a detached process that every child inherits.
void start_background(Sandbox& s) { s.exec_shell("setsid sleep 100000 </dev/null >/dev/null 2>&1 &"); }

class StressRun {
 public:
  StressRun(const ForkStressOptions& o, SandboxConfig config, Sandbox& root, std::string out,
            KvmTrace* trace)
      : o_(o), config_(std::move(config)), root_(root), out_(std::move(out)), trace_(trace) {}

  PathResult run(StressPath p) {
    PathResult r;
    r.path = p;
    const auto t0 = Clock::now();
    std::fprintf(stderr, "[fork-stress] %s: %u forks\n", to_string(p), o_.n);
    switch (p) {
      case StressPath::kTemplate:
        template_forks(r, "template", [this] { return root_.make_template(); });
        break;
      case StressPath::kPool:
        template_forks(r, "pool", [this] {
          TemplateOptions t;
          t.pool_size = o_.pool;
          return root_.make_template(t);
        });
        break;
      case StressPath::kSnapshot: {
        const std::string dir = scratch_path("snapshot");
        std::filesystem::remove_all(dir);
        template_forks(r, "snapshot", [this, &dir] {
          root_.snapshot(dir);
          return Template::open(dir);
        });
        std::filesystem::remove_all(dir);
        break;
      }
      case StressPath::kChain: chain_forks(r); break;
      case StressPath::kFreshTemplate: fresh_forks(r, false); break;
      case StressPath::kFreshSnapshot: fresh_forks(r, true); break;
    }
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return r;
  }

 private:
  ForkConfig fork_config() const {
    ForkConfig c;
    c.boot_timeout = std::chrono::seconds(120);
    c.request_timeout = std::chrono::seconds(60);
    return c;
  }

  /// The marker file says which state a child must have started from.
  void set_marker(Sandbox& s, const std::string& marker) {
    const ExecResult r = s.exec_shell("echo " + marker + " > /tmp/marker");
    if (r.exit_code != 0) throw Error("writing /tmp/marker failed: " + printable(r.stderr_data, 512));
  }

  /// Throws unless the child answers an exec with `marker` (its parent's state at the freeze).
  static void check(Sandbox& child, const std::string& marker) {
    const ExecResult r = child.exec({"cat", "/tmp/marker"});
    if (r.exit_code != 0 || r.stdout_data != marker + "\n") {
      throw Error("the child answered with '" + printable(r.stdout_data, 512) + "' (exit " +
                  (r.exit_code ? std::to_string(*r.exit_code) : std::string("none")) +
                  "), not its parent's marker '" + marker + "'");
    }
  }

  void keep_alive(std::deque<std::unique_ptr<Sandbox>>& live, std::unique_ptr<Sandbox> child) {
    live.push_back(std::move(child));
    while (live.size() > o_.live) {
      live.front()->shutdown();
      live.pop_front();
    }
  }

  void template_forks(PathResult& r, const std::string& name,
                      const std::function<std::shared_ptr<Template>()>& make) {
    // The template's state is the root's marker at the freeze; the root moves on afterwards, as
    // the e2e tests' parent does, and no child may see that.
    const std::string marker = name + "-state";
    set_marker(root_, marker);
    const std::shared_ptr<Template> tmpl = make();
    set_marker(root_, "root-after-" + name);
    fork_children(r, *tmpl, marker, o_.n, "");
  }

  /// The fresh-* paths: a newly booted sandbox per image, as the e2e tests' parents are (their
  /// RAM is still the boot's shared memfd when it is frozen or written out).
  void fresh_forks(PathResult& r, bool snapshot) {
    for (unsigned image = 0; r.attempts < o_.n && r.failed < o_.stop_after; ++image) {
      const std::string marker = "fresh-" + std::to_string(image);
      std::string dir;
      std::unique_ptr<Sandbox> parent;
      std::shared_ptr<Template> tmpl;
      try {
        parent = Sandbox::create(config_);
        start_background(*parent);
        set_marker(*parent, marker);
        if (snapshot) {
          dir = scratch_path("fresh-" + std::to_string(image));
          parent->snapshot(dir);
          tmpl = Template::open(dir);
        } else {
          tmpl = parent->make_template();
        }
        set_marker(*parent, "moved-on");
      } catch (const std::exception& e) {
        // Not a fork: the parent's boot or freeze failed. Reported (with the trace) and counted
        // apart; the path goes on with the next parent.
        ++r.parents_failed;
        write_report(r, r.attempts, "fresh parent " + std::to_string(image) + " (a boot, not a fork) failed: " + e.what(),
                     nullptr, nullptr);
        if (!dir.empty()) std::filesystem::remove_all(dir);
        if (r.parents_failed >= o_.stop_after) break;
        continue;
      }
      fork_children(r, *tmpl, marker, std::min(o_.per_image, o_.n - r.attempts), dir);
      tmpl.reset();
      parent->shutdown();
      if (!dir.empty()) std::filesystem::remove_all(dir);
    }
  }

  /// Forks `count` children of `tmpl`, each of which must answer with `marker`, and checks that
  /// the image's pages never change. `snapshot_dir` (may be empty) is where the image came from:
  /// kept in --out when a child of it fails.
  void fork_children(PathResult& r, Template& tmpl, const std::string& marker, unsigned count,
                     const std::string& snapshot_dir) {
    const auto digests = tmpl.image()->page_digests();
    std::deque<std::unique_ptr<Sandbox>> live;
    for (unsigned i = 0; i < count && r.failed < o_.stop_after; ++i) {
      const unsigned index = r.attempts++;
      const auto t0 = Clock::now();
      try {
        auto child = tmpl.fork(fork_config());
        r.to_ready_ms.push_back(ms_since(t0));
        check(*child, marker);
        keep_alive(live, std::move(child));
        ++r.ok;
      } catch (const std::exception& e) {
        // The report first: re-forking adds trace events that could push the dead vCPU's out.
        const std::string report = fail(r, index, e.what(), &digests, &tmpl);
        std::string extra = refork(tmpl, marker);
        if (!snapshot_dir.empty()) extra += keep_snapshot(r, index, snapshot_dir);
        std::ofstream(report, std::ios::app) << extra << "\n";
      }
      if ((index + 1) % 50 == 0) progress(r);
    }
    for (auto& c : live) c->shutdown();
    const auto changed = changed_pages(digests, tmpl.image()->page_digests()).size();
    r.changed_pages = std::max<long>(r.changed_pages, 0) + static_cast<long>(changed);
    if (changed > 0) fail(r, r.attempts, "the image changed while it was forked", &digests, &tmpl);
  }

  /// After a failed child: --refork more children of the same image, reported (not counted).
  /// Many failing means the image itself is bad; none, a race in the one child.
  std::string refork(Template& tmpl, const std::string& marker) {
    if (o_.refork == 0) return "";
    unsigned bad = 0;
    std::string first;
    for (unsigned k = 0; k < o_.refork; ++k) {
      try {
        auto child = tmpl.fork(fork_config());
        check(*child, marker);
        child->shutdown();
      } catch (const std::exception& e) {
        if (bad++ == 0) first = e.what();
      }
    }
    std::fprintf(stderr, "[fork-stress]   re-forks of the failed child's image: %u of %u failed\n", bad,
                 o_.refork);
    std::string out = "\nre-forks of the same image after this failure: " + std::to_string(bad) +
                      " of " + std::to_string(o_.refork) + " failed";
    if (bad > 0) out += "; the first:\n" + first;
    return out;
  }

  /// Copies a failed child's snapshot into --out (restore it again with Template::open).
  std::string keep_snapshot(const PathResult& r, unsigned index, const std::string& dir) {
    const std::string kept = out_ + "/image-" + to_string(r.path) + "-" + std::to_string(index);
    std::error_code ec;
    std::filesystem::copy(dir, kept, std::filesystem::copy_options::recursive, ec);
    return "\nthe snapshot: " + (ec ? "not kept (" + ec.message() + ")" : kept);
  }

  void chain_forks(PathResult& r) {
    set_marker(root_, "chain-root");
    std::vector<std::unique_ptr<Sandbox>> chain;  // chain[k] is level k + 1
    std::string marker = "chain-root";
    for (unsigned i = 0; i < o_.n && r.failed < o_.stop_after; ++i) {
      ++r.attempts;
      Sandbox& parent = chain.empty() ? root_ : *chain.back();
      const auto t0 = Clock::now();
      try {
        auto child = parent.fork(fork_config());
        r.to_ready_ms.push_back(ms_since(t0));
        check(*child, marker);
        // The parent moves on; the child gets a state of its own for its own children.
        set_marker(parent, marker + "-moved-on");
        marker = "chain-" + std::to_string(i);
        set_marker(*child, marker);
        chain.push_back(std::move(child));
        ++r.ok;
      } catch (const std::exception& e) {
        fail(r, i, e.what(), nullptr, nullptr);
        chain.clear();  // start again from the root
        marker = "chain-root";
        set_marker(root_, marker);
        continue;
      }
      if (chain.size() >= o_.depth) {
        while (!chain.empty()) {
          chain.back()->shutdown();
          chain.pop_back();
        }
        marker = "chain-root";
        set_marker(root_, marker);
      }
      if ((i + 1) % 50 == 0) progress(r);
    }
    while (!chain.empty()) {
      chain.back()->shutdown();
      chain.pop_back();
    }
  }

  void progress(const PathResult& r) {
    std::fprintf(stderr, "[fork-stress]   %s: %u forks, %u failed\n", to_string(r.path), r.attempts, r.failed);
  }

  /// Records a failure: the error (a VM that stopped carries its vCPUs' registers and last
  /// exits, and the console tail), the pages of the image that changed since it was made, and
  /// the dead vCPU thread's last KVM trace events.
  /// Returns the report's file.
  std::string fail(PathResult& r, unsigned index, const std::string& what,
                   const std::vector<PageDigest>* digests, const Template* tmpl) {
    ++r.failed;
    return write_report(r, index, what, digests, tmpl);
  }

  /// The report of fail(), written without counting a failed fork (a fresh parent's failure).
  std::string write_report(PathResult& r, unsigned index, const std::string& what,
                           const std::vector<PageDigest>* digests, const Template* tmpl) {
    std::string report = "forkvm-bench fork-stress: " + std::string(to_string(r.path)) + " fork " +
                         std::to_string(index) + " failed\n\n" + what + "\n";
    if (digests != nullptr && tmpl != nullptr) {
      const auto changed = changed_pages(*digests, tmpl->image()->page_digests());
      report += "\nimage pages changed since the image was made: " + std::to_string(changed.size()) + "\n";
      char buf[32];
      for (size_t k = 0; k < changed.size() && k < 256; ++k) {
        std::snprintf(buf, sizeof buf, "  0x%llx\n", static_cast<unsigned long long>(changed[k]));
        report += buf;
      }
    }
    if (trace_ != nullptr) {
      std::smatch m;
      const std::regex thread_re("host thread ([0-9]+)");
      const int tid = std::regex_search(what, m, thread_re) ? std::stoi(m[1]) : 0;
      const std::string events = trace_->excerpt(tid, 600);
      // A guest RIP in host module code (L1's kvm_amd in kvm-lab) cannot come from the guest or
      // from forkvm: the virtualization below handed the vCPU the host's own state.
      const std::string host_rips = host_code_rips(events, read_host_modules());
      if (!host_rips.empty()) {
        report += "\nThe vCPU ran at host kernel code: the nested virtualization below this host "
                  "corrupted its state (not the guest, not forkvm):\n" + host_rips;
        std::fprintf(stderr, "[fork-stress]   the dead vCPU ran at host kernel code:\n%s", host_rips.c_str());
      }
      report += "\nKVM trace events of " + (tid != 0 ? "host thread " + std::to_string(tid) : std::string("all threads")) +
                " (last 600):\n" + events;
    }
    const std::string file = out_ + "/failure-" + to_string(r.path) + "-" + std::to_string(index) + ".txt";
    std::ofstream(file) << report;
    r.reports.push_back(file);
    std::fprintf(stderr, "[fork-stress]   %s fork %u FAILED: %s\n[fork-stress]   report: %s\n",
                 to_string(r.path), index, what.substr(0, what.find('\n')).c_str(), file.c_str());
    return file;
  }

  const ForkStressOptions& o_;
  const SandboxConfig config_;  ///< how the root was booted, for the fresh-* paths' parents
  Sandbox& root_;
  std::string out_;
  KvmTrace* trace_;
};

int run(const ForkStressOptions& o) {
  raise_fd_limit();
  std::string out = o.out_dir;
  if (out.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    out = std::string(tmp != nullptr ? tmp : "/tmp") + "/forkvm-fork-stress-" + std::to_string(::getpid());
  }
  std::filesystem::create_directories(out);
  std::unique_ptr<KvmTrace> trace;
  std::string trace_note = "off";
  if (o.trace) {
    std::string why;
    trace = KvmTrace::start(why);
    trace_note = trace ? "on" : "unavailable: " + why;
  }
  const std::string dir = o.image_dir.empty() ? std::string(FORKVM_BENCH_IMAGE_DIR) : o.image_dir;
  const SandboxConfig c = image_sandbox_config(dir, o.vcpus, o.memory_mib);
  auto root = Sandbox::create(c);
  start_background(*root);
  std::fprintf(stderr, "[fork-stress] root booted (%u vCPU, %u MiB); reports in %s; KVM trace %s\n",
               o.vcpus, o.memory_mib, out.c_str(), trace_note.c_str());

  StressRun stress(o, c, *root, out, trace.get());
  std::vector<PathResult> results;
  for (StressPath p : o.paths) {
    try {
      results.push_back(stress.run(p));
    } catch (const std::exception& e) {
      // Setting the path up (a freeze, a snapshot, the root's marker) failed: that is a failure
      // of the path, reported as such, and the other paths still run.
      PathResult r;
      r.path = p;
      r.failed = 1;
      r.setup_error = e.what();
      std::fprintf(stderr, "[fork-stress] %s: setting up failed: %s\n", to_string(p), e.what());
      results.push_back(std::move(r));
    }
  }
  root->shutdown();

  unsigned failed = 0, attempts = 0;
  nlohmann::json j = nlohmann::json::array();
  std::printf("forkvm-bench fork-stress: %u vCPU, %u MiB, --live %u, --depth %u, --pool %u%s\n",
              o.vcpus, o.memory_mib, o.live, o.depth, o.pool,
              std::getenv("FORKVM_IN_KVM_LAB") != nullptr ? " (in kvm-lab)" : "");
  std::printf("%-9s %8s %6s %6s %9s %10s %10s %13s %8s\n", "path", "attempts", "ok", "failed",
              "fail rate", "p50 ms", "p90 ms", "image changed", "seconds");
  for (const auto& r : results) {
    const Summary s = summarize(r.to_ready_ms);
    const std::string changed = r.changed_pages < 0 ? "n/a" : std::to_string(r.changed_pages) + " pages";
    std::printf("%-9s %8u %6u %6u %8.2f%% %10.1f %10.1f %13s %8.0f\n", to_string(r.path), r.attempts,
                r.ok, r.failed, r.attempts ? 100.0 * r.failed / r.attempts : 0.0, s.p50, s.p90,
                changed.c_str(), r.seconds);
    for (const auto& f : r.reports) std::printf("  failure report: %s\n", f.c_str());
    if (!r.setup_error.empty()) std::printf("  setting up failed: %s\n", r.setup_error.c_str());
    if (r.parents_failed > 0) {
      std::printf("  %u fresh parents failed to boot or freeze (not forks; reports above)\n", r.parents_failed);
    }
    failed += r.failed;
    attempts += r.attempts;
    j.push_back({{"path", to_string(r.path)}, {"attempts", r.attempts}, {"ok", r.ok},
                 {"failed", r.failed}, {"fork_p50_ms", s.p50}, {"fork_p90_ms", s.p90},
                 {"changed_pages", r.changed_pages}, {"seconds", r.seconds}, {"reports", r.reports},
                 {"setup_error", r.setup_error}, {"parents_failed", r.parents_failed}});
  }
  std::printf("total: %u forks, %u failed; KVM trace %s\n", attempts, failed, trace_note.c_str());
  if (o.json) std::printf("%s\n", j.dump(2).c_str());
  return failed == 0 ? 0 : 1;
}

}  // namespace

int fork_stress(std::span<char* const> args) {
  return run_subcommand("fork-stress", args, kForkStressUsage, parse_fork_stress_options, run);
}

}  // namespace forkvm::bench
