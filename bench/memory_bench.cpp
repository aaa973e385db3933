#include "bench/memory_bench.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/fork_common.hpp"
#include "bench/fork_report.hpp"
#include "bench/memory_bench_parse.hpp"
#include "bench/stats.hpp"
#include "forkvm/errors.hpp"
#include "memory/huge_pages.hpp"

namespace forkvm::bench {
namespace {

/// Where the workload goes in the guest (its /tmp is in guest RAM).
constexpr const char* kGuestTool = "/tmp/forkvm-memwalk";

double mib(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

std::string read_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read the guest workload " + path + " (--memwalk)");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

/// The first line of a sysfs or module parameter file, or "-" when it is missing.
std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "-";
  return line;
}

/// One VM under test and its samples.
struct Subject {
  std::string key;   ///< in JSON
  std::string name;  ///< in the text
  std::unique_ptr<Sandbox> box;
  std::vector<double> chase, seq;
  std::string guest_thp;
  VmHugePages huge;  ///< sampled after its runs
};

void run_once(Subject& s, const MemoryBenchOptions& o) {
  const ExecResult r = s.box->exec({kGuestTool, std::to_string(o.working_set_mib), std::to_string(o.accesses)});
  if (!r.ok()) {
    throw Error(s.name + ": the guest workload failed (status " +
                std::to_string(r.exit_code.value_or(-1)) + "): " + r.stderr_data.substr(0, 300));
  }
  const auto sample = parse_memwalk_line(r.stdout_data);
  if (!sample) throw Error(s.name + ": unexpected workload output: " + r.stdout_data.substr(0, 300));
  s.chase.push_back(sample->chase_ns);
  s.seq.push_back(sample->seq_ns_per_page);
  s.guest_thp = sample->guest_thp;
}

/// One untimed run each (the guest and the host fault the working set in), then `rounds`
/// rounds of one run each, the order rotated every round so that drift (TCG, a busy host)
/// hits every subject alike.
void run_rounds(std::vector<Subject*> subjects, const MemoryBenchOptions& o) {
  for (Subject* s : subjects) {
    run_once(*s, o);
    s->chase.clear();
    s->seq.clear();
  }
  for (unsigned round = 0; round < o.n; ++round) {
    for (size_t i = 0; i < subjects.size(); ++i) run_once(*subjects[(i + round) % subjects.size()], o);
    std::fprintf(stderr, "  round %u/%u done\n", round + 1, o.n);
  }
  for (Subject* s : subjects) s->huge = s->box->huge_pages();
}

Subject boot(RamBacking backing, const MemoryBenchOptions& o, const std::string& tool) {
  SandboxConfig c = image_sandbox_config(o.image_dir, o.vcpus, o.memory_mib);
  c.vm.ram_backing = backing;
  c.boot_timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000));
  Subject s;
  s.name = std::string(to_string(backing));
  s.key = s.name == "memfd-huge" ? "memfd_huge" : s.name;
  const auto t0 = Clock::now();
  s.box = Sandbox::create(c);
  s.box->write_file(kGuestTool, tool, 0755);
  std::fprintf(stderr, "  %s: booted in %.0f ms\n", s.name.c_str(), ms_since(t0));
  return s;
}

/// The rows and values of one subject in `chase`, `seq` and `huge`.
void add_subject(Report& rep, const Subject& s, const Subject& ref) {
  const Summary c = summarize(s.chase), q = summarize(s.seq);
  const Summary rc = summarize(ref.chase), rq = summarize(ref.seq);
  rep.sections[0].rows.push_back({s.key, s.name, "ns/access", c});
  rep.sections[1].rows.push_back({s.key, s.name, "ns/page", q});
  if (&s != &ref) {
    add_ratio(rep.sections[0], s.key + "_vs_memfd", s.name + " / memfd", c, rc);
    add_ratio(rep.sections[1], s.key + "_vs_memfd", s.name + " / memfd", q, rq);
  }
  ReportSection& h = rep.sections[2];
  h.values.push_back({s.key + "_advised", s.name + ": MADV_HUGEPAGE asked", "", s.huge.advised ? 1.0 : 0.0});
  h.values.push_back({s.key + "_advice_accepted", s.name + ": MADV_HUGEPAGE accepted", "",
                      s.huge.advice_accepted ? 1.0 : 0.0, s.huge.advised});
  h.values.push_back({s.key + "_rss_mib", s.name + ": RAM resident", "MiB", mib(s.huge.rss_bytes)});
  h.values.push_back({s.key + "_anon_huge_mib", s.name + ": AnonHugePages", "MiB", mib(s.huge.anon_huge_bytes)});
  h.values.push_back({s.key + "_file_pmd_mib", s.name + ": ShmemPmdMapped+FilePmdMapped", "MiB",
                      mib(s.huge.file_pmd_bytes)});
  if (!s.huge.advice_error.empty()) h.notes.push_back(s.name + ": " + s.huge.advice_error);
}

/// The summary table of the issue: one line per subject.
std::string table_line(const Subject& s, const Subject& ref) {
  const Summary c = summarize(s.chase), rc = summarize(ref.chase), q = summarize(s.seq);
  const std::string advice = !s.huge.advised ? "-" : s.huge.advice_accepted ? "accepted" : "refused";
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %-22s %9.1f %9.1f %7.2fx %9.1f %9s %8.1f %8.1f %8.1f\n",
                s.name.c_str(), c.p50, c.p90, rc.p50 > 0 ? c.p50 / rc.p50 : 0.0, q.p50,
                advice.c_str(), mib(s.huge.rss_bytes), mib(s.huge.anon_huge_bytes),
                mib(s.huge.file_pmd_bytes));
  return buf;
}

int run(const MemoryBenchOptions& o) {
  const std::string tool = read_binary(o.memwalk);
  const ThpSettings thp = read_thp_settings();
  const std::string npt = first_line("/sys/module/kvm_amd/parameters/npt");
  const std::string ept = first_line("/sys/module/kvm_intel/parameters/ept");

  std::fprintf(stderr, "booting one sandbox per RAM backing (%u MiB each)\n", o.memory_mib);
  std::vector<Subject> subjects;
  for (RamBacking b : {RamBacking::kMemfd, RamBacking::kMemfdHugePages, RamBacking::kAnonymous}) {
    subjects.push_back(boot(b, o, tool));
  }
  run_rounds({&subjects[0], &subjects[1], &subjects[2]}, o);
  const Subject& ref = subjects[0];

  Report rep;
  rep.header = {
      "forkvm-bench memory: a guest memory-bound workload per RAM backing, same run, " +
          std::to_string(o.n) + " interleaved runs each",
      "  workload: forkvm-memwalk " + std::to_string(o.working_set_mib) + " MiB, " +
          std::to_string(o.accesses) + " dependent loads, one line per 4 KiB page in random page "
          "order (TLB-bound), then a sequential read; timed in the guest",
      "  host THP: enabled [" + thp.enabled + "], shmem_enabled [" + thp.shmem_enabled +
          "]; kvm_amd npt " + npt + ", kvm_intel ept " + ept + "; guest THP: " + ref.guest_thp,
      "  guest " + std::to_string(o.memory_mib) + " MiB, " + std::to_string(o.vcpus) + " vCPU",
  };
  rep.setup = {{"thp_enabled", thp.enabled}, {"shmem_enabled", thp.shmem_enabled},
               {"kvm_amd_npt", npt}, {"kvm_intel_ept", ept}, {"guest_thp", ref.guest_thp},
               {"working_set_mib", o.working_set_mib}, {"accesses", o.accesses},
               {"memory_mib", o.memory_mib}, {"runs", o.n}};
  rep.sections.push_back({"chase", "pointer chase (ns per access, lower is better)", {}, {}, {}, {}});
  rep.sections.push_back({"seq", "sequential read (ns per 4 KiB page, lower is better)", {}, {}, {}, {}});
  rep.sections.push_back({"huge_pages", "huge pages behind each VM's RAM after its runs (/proc/self/smaps)", {}, {}, {}, {}});
  for (const Subject& s : subjects) add_subject(rep, s, ref);

  std::vector<Subject> forked;
  if (o.fork) {
    // The memfd-huge VM forks as the default memfd does: its memfd becomes the child's
    // copy-on-write base. Right after the fork, the child's private bytes are what it copied.
    Subject& parent = subjects[1];
    const auto t0 = Clock::now();
    Subject child;
    child.key = "fork_child";
    child.name = "memfd-huge fork child";
    child.box = parent.box->fork();
    const double fork_ms = ms_since(t0);
    const VmMemoryUsage child_after = child.box->memory_usage();
    const VmMemoryUsage parent_after = parent.box->memory_usage();
    Subject parent_post;
    parent_post.key = "fork_parent";
    parent_post.name = "memfd-huge parent after fork";
    parent_post.box = std::move(parent.box);
    forked.push_back(std::move(child));
    forked.push_back(std::move(parent_post));
    run_rounds({&forked[0], &forked[1]}, o);
    const VmMemoryUsage child_end = forked[0].box->memory_usage();
    ReportSection f{"fork", "Sandbox::fork of the memfd-huge VM, then the workload in child and parent", {}, {}, {}, {}};
    f.notes.push_back("private = pages copied into this VM (pagemap); shared = the frozen memfd's pages it maps");
    f.values.push_back({"fork_ms", "fork() call to a ready child", "ms", fork_ms});
    f.values.push_back({"child_private_mib_after_fork", "child private right after fork", "MiB", mib(child_after.private_bytes)});
    f.values.push_back({"child_shared_mib_after_fork", "child shared right after fork", "MiB", mib(child_after.shared_bytes)});
    f.values.push_back({"parent_private_mib_after_fork", "parent private right after fork", "MiB", mib(parent_after.private_bytes)});
    f.values.push_back({"child_private_mib_after_runs", "child private after its runs", "MiB", mib(child_end.private_bytes)});
    f.values.push_back({"freeze_ms", "  of which freeze (pause, capture, memory)", "ms",
                        to_ms(forked[0].box->fork_timings().freeze)});
    // The anonymous VM forks too, but its freeze copies every page its guest ever touched into
    // a new memory file: the cost the memfd backings avoid.
    const auto t1 = Clock::now();
    std::unique_ptr<Sandbox> anon_child = subjects[2].box->fork();
    f.values.push_back({"anonymous_fork_ms", "anonymous VM: fork() call to a ready child", "ms", ms_since(t1)});
    f.values.push_back({"anonymous_freeze_ms", "  of which freeze (copies the touched RAM)", "ms",
                        to_ms(anon_child->fork_timings().freeze)});
    anon_child->shutdown();
    rep.sections.push_back(std::move(f));
    for (const Subject& s : forked) add_subject(rep, s, ref);
    add_ratio(rep.sections[0], "child_vs_memfd_huge_before_fork", "child / memfd-huge before fork",
              summarize(forked[0].chase), summarize(subjects[1].chase));
  }

  if (o.json) {
    std::printf("%s\n", render_json(rep).dump(2).c_str());
  } else {
    std::printf("%s", render_text(rep).c_str());
    std::printf("\nsummary (chase ns/access; huge pages in MiB of the VM's RAM mapping):\n");
    std::printf("  %-22s %9s %9s %8s %9s %9s %8s %8s %8s\n", "backing", "p50", "p90", "/memfd",
                "seq p50", "madvise", "rss", "AnonHP", "PmdMap");
    for (const Subject& s : subjects) std::printf("%s", table_line(s, ref).c_str());
    for (const Subject& s : forked) std::printf("%s", table_line(s, ref).c_str());
  }
  for (auto* list : {&subjects, &forked}) {
    for (Subject& s : *list) {
      if (s.box) s.box->shutdown();
    }
  }
  return 0;
}

}  // namespace

int memory_bench(std::span<char* const> args, const std::string& memwalk) {
  MemoryBenchOptions o;
  try {
    o = parse_memory_options(args, FORKVM_BENCH_IMAGE_DIR, memwalk);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench memory: %s\n%s", e.what(), kMemoryBenchUsage);
    return 2;
  }
  if (o.memwalk.empty()) {
    std::fprintf(stderr, "forkvm-bench memory: this build has no guest workload (a sanitizer or fuzz "
                         "tree builds no static binaries): give --memwalk PATH\n");
    return 2;
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-bench memory: %s\n", e.what());
    return 1;
  }
}

}  // namespace forkvm::bench
