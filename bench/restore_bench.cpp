#include "bench/restore_bench.hpp"

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench/fork_common.hpp"
#include "bench/fork_report.hpp"
#include "bench/qemu_restore.hpp"
#include "bench/restore_options.hpp"
#include "bench/scratch_dir.hpp"
#include "forkvm/errors.hpp"
#include "forkvm/template.hpp"

namespace forkvm::bench {
namespace {

/// What making the snapshot took and left.
struct SnapshotMade {
  double boot_ms = 0;      ///< Sandbox::create() of the sandbox snapshotted
  double snapshot_ms = 0;  ///< Sandbox::snapshot()
  uint64_t bytes = 0;      ///< the directory's files, apparent size
  uint64_t allocated = 0;  ///< and what they occupy (a sparse memory file takes less)
};

SnapshotMade make_snapshot(const RestoreBenchOptions& o, const std::string& dir,
                           const std::string& second_dir) {
  SnapshotMade m;
  SandboxConfig c = image_sandbox_config(o.image_dir, o.vcpus, o.memory_mib);
  const auto t0 = Clock::now();
  auto box = Sandbox::create(c);
  m.boot_ms = ms_since(t0);
  if (!box->exec({"true"}).ok()) throw Error("exec([\"true\"]) before the snapshot did not exit 0");
  const auto t1 = Clock::now();
  box->snapshot(dir);
  m.snapshot_ms = ms_since(t1);
  box->snapshot(second_dir);  // the same guest, for the `learned` series
  destroy_timed(std::move(box));
  Sandbox::wait_for_teardowns();
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    m.bytes += e.file_size();
    struct stat st{};
    if (::stat(e.path().c_str(), &st) == 0) m.allocated += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return m;
}

/// Sandbox::restore(dir) -> first exec, one way of verifying, in ms.
struct RestoreSeries {
  std::vector<double> to_exec, call, first_exec, warm_exec, teardown, reaped;
  std::vector<double> prefaulted_mib;  ///< ForkTimings::prefaulted_bytes
  /// The first exec's KVM page faults (nested ones with NPT/EPT) and VM exits, where KVM
  /// reports them.
  std::vector<double> first_exec_faults, first_exec_exits;
};

/// Every sample of the run, in ms.
struct Samples {
  RestoreSeries verified;    ///< the default: the memory file re-hashed against its digest
  RestoreSeries unverified;  ///< SandboxRestoreConfig::verify_memory = false
  /// The default restore of a directory this process opened before, its image kept
  /// (VmImage::keep_opened(1)): no reading, hashing or decoding of the files.
  RestoreSeries reused;
  /// The default restore of a second copy of the snapshot whose image the bench holds open for
  /// the whole run, taught by the warm-up restore's first exec: each restore takes the pages a
  /// first exec touches ahead (VmImage::first_touches, SandboxRestoreConfig::prefault).
  RestoreSeries learned;
  // Template::open + fork (no pool) + exec
  std::vector<double> open, split_to_exec, split_first_exec;
  ForkSeries split;
  // QEMU
  std::vector<double> q_qmp, q_running, q_answer, q_running_to_answer;
  unsigned qemu_failures = 0;
};

void restore_round(const std::string& snapshot, const RestoreBenchOptions& o, bool verify, RestoreSeries& s) {
  SandboxRestoreConfig rc;
  rc.boot_timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000));
  rc.request_timeout = std::chrono::seconds(120);
  rc.verify_memory = verify;
  ForkedChild c = fork_and_exec([&] { return Sandbox::restore(snapshot, rc); });
  s.to_exec.push_back(c.to_exec_ms);
  s.call.push_back(c.fork_call_ms);
  s.first_exec.push_back(c.exec_ms);
  s.warm_exec.push_back(c.warm_exec_ms);
  s.prefaulted_mib.push_back(static_cast<double>(c.sandbox->fork_timings().prefaulted_bytes) / (1 << 20));
  if (c.first_exec_kvm && c.first_exec_kvm->available) {
    s.first_exec_faults.push_back(static_cast<double>(c.first_exec_kvm->page_faults));
    s.first_exec_exits.push_back(static_cast<double>(c.first_exec_kvm->exits));
  }
  double reaped = 0;
  s.teardown.push_back(destroy_timed(std::move(c.sandbox), &reaped));
  s.reaped.push_back(reaped);
}

void split_round(const std::string& snapshot, const RestoreBenchOptions& o, Samples& s) {
  TemplateOptions to;
  to.verify_memory = true;  // as Sandbox::restore by default: the open phase shows what it costs
  to.pool_size = 0;     // every fork prepares its own VM, as a restore does
  to.prefault = false;  // a restore takes no pages ahead either
  ForkConfig fc;
  fc.boot_timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000));
  fc.request_timeout = std::chrono::seconds(120);
  const auto t0 = Clock::now();
  auto t = Template::open(snapshot, to);
  const double open_ms = ms_since(t0);
  ForkedChild c = fork_and_exec([&] { return t->fork(fc); });
  s.open.push_back(open_ms);
  s.split_to_exec.push_back(open_ms + c.to_exec_ms);
  s.split_first_exec.push_back(c.exec_ms);
  s.split.add(c);
  destroy_timed(std::move(c.sandbox));
  t.reset();
  Sandbox::wait_for_teardowns();
}

/// The image of the snapshot in `dir`, opened once VmImage::open remembers it. A snapshot is
/// reused only once its files' times are a couple of seconds old (vmm/opened_images.hpp), so
/// one written a moment ago is opened anew by every restore, and the `learned` series would
/// only repeat the verified one. Retried until open() hands the same image back; throws if it
/// still does not after 20 s.
std::shared_ptr<const VmImage> hold_image(const std::string& dir) {
  const auto give_up = Clock::now() + std::chrono::seconds(20);
  for (;;) {
    auto held = VmImage::open(dir);
    if (VmImage::open(dir) == held) return held;
    if (Clock::now() >= give_up) {
      throw Error("the snapshot image held for the `learned` series is not reused by VmImage::open(" + dir + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

std::string mib_text(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

Report build_report(const RestoreBenchOptions& o, const SnapshotMade& snap, const QemuRestoreReference* q,
                    const Samples& s) {
  Report r;
  r.header = {
      "forkvm-bench restore: " + std::to_string(o.n) + " round(s), each a forkvm restore, the same restore split "
      "into phases, and a QEMU restore, interleaved; guest: the built-in image (initramfs), " +
          std::to_string(o.vcpus) + " vCPU, " + std::to_string(o.memory_mib) + " MiB",
      "  forkvm: Sandbox::restore(dir) call -> the first exec([\"true\"]) answered, in this process (no process "
      "start), with the memory file re-hashed against its digest (the default) and without (verify_memory = false)",
      "  snapshot: " + mib_text(snap.bytes) + " in files (" + mib_text(snap.allocated) + " allocated), taken after one "
      "exec([\"true\"]) of a booted sandbox",
  };
  if (q != nullptr) {
    r.header.push_back("  QEMU " + q->version() + ": process spawn -> the restored guest's answer on its serial port "
                       "to one request line written once QMP reports the guest running (the guest reads the line, "
                       "forks and execs /bin/true, then answers: the counterpart of exec([\"true\"]))");
    r.header.push_back("  QEMU migration file: " + mib_text(q->migration_file_bytes()) +
                       " (written by QMP migrate to exec:cat while the guest ran; QEMU stores no zero pages)");
    r.header.push_back("  QEMU restore command: " + q->restore_command_text());
  }
  r.header.push_back("  one round of each kind ran first as a warm-up (page cache, QEMU's binary) and is not counted");
  r.header.push_back("  in kvm-lab everything is 30-100x slower than on hardware: compare the same-run ratios only");
  r.setup = {{"rounds", o.n}, {"vcpus", o.vcpus}, {"memory_mib", o.memory_mib},
             {"snapshot_bytes", snap.bytes}, {"snapshot_allocated_bytes", snap.allocated},
             {"snapshot_boot_ms", snap.boot_ms}, {"snapshot_capture_ms", snap.snapshot_ms}};
  if (q != nullptr) {
    r.setup["qemu_version"] = q->version();
    r.setup["qemu_restore_command"] = q->restore_command_text();
    r.setup["qemu_migration_file_bytes"] = q->migration_file_bytes();
    r.setup["qemu_source_boot_ms"] = q->source_boot_ms();
    r.setup["qemu_migrate_ms"] = q->migrate_ms();
    r.setup["qemu_failures"] = s.qemu_failures;
  }
  auto row = [](ReportSection& sec, const std::string& key, const std::string& label, const std::vector<double>& v) {
    sec.rows.push_back({key, label, "ms", summarize(v)});
  };

  auto restore_section = [&](const std::string& key, const std::string& title, const RestoreSeries& v) {
    ReportSection fk;
    fk.key = key;
    fk.title = title;
    row(fk, "restore_to_exec", "restore -> first exec answered", v.to_exec);
    row(fk, "restore_call", "  Sandbox::restore() call", v.call);
    row(fk, "first_exec", "  first exec([\"true\"])", v.first_exec);
    fk.rows.push_back({"prefaulted", "  memory taken ahead of the guest", "MiB", summarize(v.prefaulted_mib)});
    if (!v.first_exec_faults.empty()) {
      fk.rows.push_back({"first_exec_faults", "  first exec: KVM page faults (pf_taken)", "n",
                         summarize(v.first_exec_faults)});
      fk.rows.push_back({"first_exec_exits", "  first exec: VM exits", "n", summarize(v.first_exec_exits)});
    }
    row(fk, "warm_exec", "warmed exec on the same sandbox (reference)", v.warm_exec);
    row(fk, "teardown", "teardown: shutdown() + destructor", v.teardown);
    row(fk, "teardown_reaped", "teardown until reaped", v.reaped);
    r.sections.push_back(std::move(fk));
  };
  restore_section("forkvm", "forkvm: Sandbox::restore(dir) -> first exec answered, memory verified (the default) (ms)",
                  s.verified);
  restore_section("forkvm_unverified",
                  "forkvm: Sandbox::restore(dir) -> first exec answered, verify_memory = false (ms)", s.unverified);
  restore_section("forkvm_reused",
                  "forkvm: Sandbox::restore(dir) -> first exec answered, memory verified, the directory opened "
                  "before in this process and its image kept (VmImage::keep_opened) (ms)",
                  s.reused);
  restore_section("forkvm_learned",
                  "forkvm: Sandbox::restore(dir) -> first exec answered, memory verified, a directory whose "
                  "image this process holds open and an earlier restore's first exec taught (its first "
                  "touches taken ahead) (ms)",
                  s.learned);

  ReportSection sp;
  sp.key = "split";
  sp.title = "forkvm, the same restore in phases: Template::open(dir) + fork() without a pool + exec (ms)";
  sp.notes.push_back("Sandbox::restore records no phases; this path runs the same steps (open and verify the "
                     "snapshot, Vm::prepare + launch, agent connect, identity) and Sandbox::fork_timings() has them");
  row(sp, "open_to_exec", "open -> first exec answered", s.split_to_exec);
  row(sp, "open", "  open + verify the snapshot (Template::open; mostly the memory digest)", s.open);
  add_fork_rows(sp, "vm", "  VM build + state restore (fork() -> vCPUs ready)", s.split);
  for (auto& rr : sp.rows) {
    if (rr.key.rfind("vm_", 0) == 0) rr.label = "  " + rr.label;  // phases of the VM row
  }
  row(sp, "agent_connect", "  agent connect (accept + greeting)", s.split.agent_connect);
  row(sp, "identity", "  identity (the first request)", s.split.identity);
  row(sp, "ready_other", "  rest of fork() (egress proxy, threads)", s.split.ready_other);
  row(sp, "first_exec", "  first exec([\"true\"])", s.split_first_exec);
  r.sections.push_back(std::move(sp));

  if (q != nullptr) {
    ReportSection qs;
    qs.key = "qemu";
    qs.title = "QEMU -M microvm -incoming: process spawn -> first answer (ms)";
    if (s.qemu_failures > 0) {
      qs.notes.push_back(std::to_string(s.qemu_failures) + " of " + std::to_string(o.n) +
                         " QEMU restores failed (see stderr); not samples");
    }
    row(qs, "spawn_to_answer", "spawn -> guest answered", s.q_answer);
    row(qs, "spawn_to_qmp", "  spawn -> QMP greeting", s.q_qmp);
    row(qs, "spawn_to_running", "  spawn -> guest running (migration file loaded)", s.q_running);
    row(qs, "running_to_answer", "  running -> answer (request, /bin/true, reply)", s.q_running_to_answer);
    r.sections.push_back(std::move(qs));

    ReportSection ra;
    ra.key = "ratios";
    ra.title = "ratios forkvm / QEMU (below 1: forkvm is faster)";
    add_ratio(ra, "restore_to_answer", "restore -> first answer (Sandbox::restore, verified / QEMU)",
              summarize(s.verified.to_exec), summarize(s.q_answer));
    add_ratio(ra, "restore_unverified_to_answer", "restore -> first answer (Sandbox::restore, unverified / QEMU)",
              summarize(s.unverified.to_exec), summarize(s.q_answer));
    add_ratio(ra, "restore_reused_to_answer",
              "restore -> first answer (Sandbox::restore of a directory opened before / QEMU)",
              summarize(s.reused.to_exec), summarize(s.q_answer));
    add_ratio(ra, "restore_learned_to_answer",
              "restore -> first answer (Sandbox::restore, image held and taught / QEMU)",
              summarize(s.learned.to_exec), summarize(s.q_answer));
    add_ratio(ra, "split_to_answer", "restore -> first answer (phased path, verified / QEMU)",
              summarize(s.split_to_exec), summarize(s.q_answer));
    add_ratio(ra, "first_request", "first request after the restore (first exec, unverified restore / QEMU running -> answer)",
              summarize(s.unverified.first_exec), summarize(s.q_running_to_answer));
    r.sections.push_back(std::move(ra));
  }
  return r;
}

}  // namespace

int restore_bench(std::span<char* const> args) {
  RestoreBenchOptions o;
  try {
    o = parse_restore_options(args, FORKVM_BENCH_IMAGE_DIR);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench restore: %s\n%s", e.what(), kRestoreBenchUsage);
    return 2;
  }
  const QemuBoot boot = qemu_boot_of(o);
  std::string why;
  if (o.qemu && !qemu_reference_available(boot, &why)) {
    std::fprintf(stderr, "forkvm-bench restore: the QEMU reference cannot run: %s (--no-qemu measures forkvm "
                         "alone)\n", why.c_str());
    return 3;
  }
  const auto scratch = scratch_dir("restore");
  if (!scratch) return 3;
  // A write to the serial port of a QEMU that has just died must fail with EPIPE, not kill
  // the benchmark.
  ::signal(SIGPIPE, SIG_IGN);
  try {
    const std::string snapshot = scratch->path() + "/snapshot";
    std::fprintf(stderr, "forkvm-bench restore: booting a %u MiB sandbox and taking its snapshot ...\n", o.memory_mib);
    const std::string learned_dir = scratch->path() + "/snapshot-learned";
    const SnapshotMade snap = make_snapshot(o, snapshot, learned_dir);
    std::unique_ptr<QemuRestoreReference> qemu;
    if (o.qemu) {
      std::fprintf(stderr, "forkvm-bench restore: booting QEMU and writing its migration file ...\n");
      qemu = std::make_unique<QemuRestoreReference>(boot, scratch->path());
      qemu->prepare();
    }
    Samples s;
    // Every restore below opens the directory anew (as QEMU reads its file anew), except the
    // `reused` one, which is what VmImage::keep_opened is for.
    VmImage::keep_opened(0);
    // Held for the whole run; its directory is restored by the `learned` series only.
    const std::shared_ptr<const VmImage> held = hold_image(learned_dir);
    {
      std::fprintf(stderr, "forkvm-bench restore: a warm-up round, not counted ...\n");
      Samples warm_up;
      restore_round(learned_dir, o, true, warm_up.learned);  // teaches `held` its first touches
      restore_round(snapshot, o, false, warm_up.unverified);
      split_round(snapshot, o, warm_up);
      if (qemu) qemu->restore_once(o.n + 1);
    }
    for (unsigned i = 0; i < o.n; ++i) {
      restore_round(snapshot, o, true, s.verified);
      restore_round(snapshot, o, false, s.unverified);
      split_round(snapshot, o, s);
      {
        VmImage::keep_opened(1);
        (void)VmImage::open(snapshot);  // not timed: the open an earlier restore would have made
        restore_round(snapshot, o, true, s.reused);
        VmImage::keep_opened(0);
      }
      restore_round(learned_dir, o, true, s.learned);
      std::fprintf(stderr,
                   "  round %u: forkvm %.1f ms (unverified %.1f ms, reused %.1f ms, learned %.1f ms), phased %.1f ms",
                   i + 1, s.verified.to_exec.back(), s.unverified.to_exec.back(), s.reused.to_exec.back(),
                   s.learned.to_exec.back(), s.split_to_exec.back());
      if (qemu) {
        try {
          const QemuRestoreSample q = qemu->restore_once(i + 1);
          s.q_qmp.push_back(q.qmp_ms);
          s.q_running.push_back(q.running_ms);
          s.q_answer.push_back(q.answer_ms);
          s.q_running_to_answer.push_back(q.answer_ms - q.running_ms);
          std::fprintf(stderr, ", qemu %.1f ms", q.answer_ms);
        } catch (const std::exception& e) {
          // Someone else's VMM in a nested, emulated lab: one failed restore is reported and
          // counted, not allowed to void the forkvm samples.
          ++s.qemu_failures;
          std::fprintf(stderr, "\nforkvm-bench restore: QEMU restore %u failed: %s\n", i + 1, e.what());
        }
      }
      std::fprintf(stderr, "\n");
    }
    const Report r = build_report(o, snap, qemu.get(), s);
    if (o.json) std::printf("%s\n", render_json(r).dump(2).c_str());
    else std::printf("%s", render_text(r).c_str());
    if (qemu && s.q_answer.empty()) {
      std::fprintf(stderr, "forkvm-bench restore: every QEMU restore failed: no reference, no ratio\n");
      return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench restore: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace forkvm::bench
