// e2e tier: the shell pool (forkvm/shell_pool.hpp) on the real guest (directly on a VMX/SVM
// host, otherwise inside kvm-lab). One parent sandbox is booted for the binary; then:
// - Sandbox::fork and Sandbox::restore take a shell that the parent's boot made warm;
// - a template's children forked from 4 threads at once drain the pool, which refills;
// - with the pool off, a fork builds its VM inline and says so;
// - shells whose VM died in the pool are destroyed, never handed out;
// - running out of file descriptors, of address space for guest memory and threads
//   (RLIMIT_AS), or of KVM VMs (KVM_CREATE_VM failing with ENOMEM) mid-burst fails that fork
//   with a typed error; the parent, the children already made and the pool go on working, and
//   no descriptor leaks.
#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "forkvm/errors.hpp"
#include "forkvm/fork_config.hpp"
#include "forkvm/sandbox.hpp"
#include "forkvm/shell_pool.hpp"
#include "forkvm/template.hpp"
#include "tests/e2e/e2e_image.hpp"
#include "tests/e2e/sandbox_helpers.hpp"
#include "tests/support/temp_dir.hpp"
#include "vmm/shell_pool.hpp"

namespace forkvm::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMemoryMib = 128;

void step(const std::string& what) {
  static const Clock::time_point start = Clock::now();
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  std::fprintf(stderr, "[e2e_shell_pool %7.1fs] %s\n", s, what.c_str());
}

ForkConfig fork_config() {
  ForkConfig fc;
  fc.boot_timeout = kBootDeadline;
  fc.request_timeout = 120s;
  return fc;
}

/// The parent's machine shape (1 vCPU, kMemoryMib, /dev/kvm); ShellShape::same_as ignores kvm.
ShellShape parent_shape() { return ShellShape{nullptr, "/dev/kvm", 1, kMemoryMib}; }

/// This process's open descriptors: number -> what it refers to (the readlink of
/// /proc/self/fd/N, e.g. "anon_inode:kvm-vm" or "socket:[1234]"). The listing's own descriptor
/// of /proc/self/fd is in it, in every reading alike, so two readings compare.
std::map<int, std::string> fd_table() {
  std::map<int, std::string> fds;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(e.path(), ec);
    if (ec) continue;  // closed by another thread between the listing and the readlink
    fds.emplace(std::stoi(e.path().filename().string()), target.string());
  }
  return fds;
}

/// What changed between two fd_table()s, one line per descriptor ("" if nothing did).
std::string fd_changes(const std::map<int, std::string>& before, const std::map<int, std::string>& after) {
  std::string out;
  for (const auto& [fd, what] : before) {
    const auto it = after.find(fd);
    if (it == after.end()) {
      out += "  closed " + std::to_string(fd) + " (" + what + ")\n";
    } else if (it->second != what) {
      out += "  reused " + std::to_string(fd) + ": " + what + " -> " + it->second + "\n";
    }
  }
  for (const auto& [fd, what] : after) {
    if (before.count(fd) == 0) out += "  opened " + std::to_string(fd) + " (" + what + ")\n";
  }
  return out;
}

/// The pool full again (bounded), as every test leaves it.
void expect_pool_full() {
  EXPECT_TRUE(wait_for_shell_pool(60s)) << "the pool did not refill within 60 s: "
                                        << shell_pool_stats().last_error;
}

/// The child answers an exec with its own output.
void expect_answers(Sandbox& child, const std::string& word) {
  EXPECT_EQ(sh(child, "echo " + word), word + "\n");
}

/// One parent for every test: booted on first use.
Sandbox& parent() {
  static std::unique_ptr<Sandbox> box = [] {
    step("boot the parent");
    SandboxConfig config;
    config.vm = builtin_config(1, kMemoryMib, "");
    config.boot_timeout = kBootDeadline;
    config.request_timeout = 120s;
    auto b = Sandbox::create(config);
    step("parent ready");
    return b;
  }();
  return *box;
}

class ShellPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    configure_shell_pool(ShellPoolOptions{});  // the defaults: 2 per shape
    parent();
  }
  void TearDown() override {
    configure_shell_pool(ShellPoolOptions{});
    Sandbox::wait_for_teardowns();
  }
};

TEST_F(ShellPoolTest, SandboxForkAndRestoreTakeAShellTheBootMadeWarm) {
  // The parent's boot made its shape warm: its fork and a restore of its snapshot find shells.
  ASSERT_TRUE(wait_for_shell_pool(60s));
  EXPECT_GE(shell_pool_stats().ready, ShellPoolOptions{}.per_shape);
  step("Sandbox::fork with a warm pool");
  auto child = parent().fork(fork_config());
  const ForkTimings& t = child->fork_timings();
  EXPECT_TRUE(t.vm.from_shell);
  EXPECT_EQ(t.vm.create_vm.count(), 0) << "the shell's KVM VM was made ahead";
  EXPECT_EQ(t.vm.vcpus.count(), 0);
  EXPECT_GT(t.vm.memory.count(), 0) << "the image is mapped into the shell at fork time";
  expect_answers(*child, "forked");
  child->shutdown();

  test::TempDir dir("shell-pool");
  const std::string snap = (dir.path() / "snap").string();
  parent().snapshot(snap);
  ASSERT_TRUE(wait_for_shell_pool(60s));
  step("Sandbox::restore with a warm pool");
  SandboxRestoreConfig rc;
  rc.boot_timeout = kBootDeadline;
  rc.request_timeout = 120s;
  auto restored = Sandbox::restore(snap, rc);
  EXPECT_TRUE(restored->fork_timings().vm.from_shell);
  EXPECT_GT(restored->fork_timings().to_vcpus_ready.count(), 0);
  expect_answers(*restored, "restored");
  restored->shutdown();
  expect_pool_full();
}

TEST_F(ShellPoolTest, DrainedAndRefilledUnderForksFromFourThreads) {
  auto tmpl = parent().make_template();  // no template pool: every child takes a shell or builds
  ASSERT_TRUE(wait_for_shell_pool(60s));
  const ShellPoolStats before = shell_pool_stats();
  constexpr int kThreads = 4;
  constexpr int kEach = 3;
  std::mutex mu;
  std::vector<std::unique_ptr<Sandbox>> children;
  std::vector<std::string> errors;
  std::atomic<int> from_shell{0};
  step("12 forks from 4 threads");
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < kEach; ++k) {
        try {
          auto c = tmpl->fork(fork_config());
          if (c->fork_timings().vm.from_shell) ++from_shell;
          const std::string word = "t" + std::to_string(i) + "k" + std::to_string(k);
          const ExecResult r = c->exec({"echo", word});
          std::lock_guard lock(mu);
          if (r.exit_code != 0 || r.stdout_data != word + "\n") errors.push_back("bad exec in " + word);
          children.push_back(std::move(c));
        } catch (const std::exception& e) {
          std::lock_guard lock(mu);
          errors.push_back(e.what());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(errors.empty()) << errors.front();
  const ShellPoolStats after = shell_pool_stats();
  step("taken " + std::to_string(after.taken - before.taken) + ", built inline " +
       std::to_string(after.missed - before.missed) + ", refilled " +
       std::to_string(after.built - before.built));
  EXPECT_EQ((after.taken - before.taken) + (after.missed - before.missed), uint64_t{kThreads * kEach})
      << "every fork either took a shell or built one inline";
  EXPECT_EQ(after.taken - before.taken, static_cast<uint64_t>(from_shell.load()))
      << "ForkTimings::vm.from_shell says where each child's VM came from";
  for (auto& c : children) c->shutdown();
  expect_pool_full();
  const ShellPoolStats refilled = shell_pool_stats();
  EXPECT_EQ(refilled.ready, ShellPoolOptions{}.per_shape);
  EXPECT_GE(refilled.built - before.built, after.taken - before.taken) << "each shell taken was replaced";
}

TEST_F(ShellPoolTest, WithThePoolOffAForkBuildsItsVmInlineAndSaysSo) {
  auto tmpl = parent().make_template();
  ShellPoolOptions off;
  off.per_shape = 0;
  configure_shell_pool(off);
  EXPECT_EQ(shell_pool_stats().ready, 0u) << "turning the pool off drops its shells";
  const ShellPoolStats before = shell_pool_stats();
  auto child = tmpl->fork(fork_config());
  const ForkTimings& t = child->fork_timings();
  EXPECT_FALSE(t.vm.from_shell);
  EXPECT_GT(t.vm.create_vm.count(), 0) << "built on the fork's path";
  EXPECT_GT(t.vm.vcpus.count(), 0);
  EXPECT_EQ(shell_pool_stats().missed, before.missed + 1);
  expect_answers(*child, "inline");
  child->shutdown();
  configure_shell_pool(ShellPoolOptions{});
  expect_pool_full();
}

TEST_F(ShellPoolTest, ShellsWhoseVmDiedAreDiscardedNotHandedOut) {
  auto tmpl = parent().make_template();
  ASSERT_TRUE(wait_for_shell_pool(60s));
  const ShellPoolStats before = shell_pool_stats();
  // Every ready shell of the shape gets a VM descriptor that is no longer a VM.
  const size_t broken = ShellPool::instance().break_shells_for_test(parent_shape());
  ASSERT_EQ(broken, before.ready);
  auto child = tmpl->fork(fork_config());
  const ShellPoolStats after = shell_pool_stats();
  EXPECT_EQ(after.discarded_dead, before.discarded_dead + broken);
  EXPECT_FALSE(child->fork_timings().vm.from_shell) << "no dead shell is handed out";
  EXPECT_EQ(after.missed, before.missed + 1);
  expect_answers(*child, "alive");
  child->shutdown();
  expect_pool_full();
  auto next = tmpl->fork(fork_config());
  EXPECT_TRUE(next->fork_timings().vm.from_shell) << "the refilled shells are live";
  expect_answers(*next, "again");
  next->shutdown();
}

/// A burst of forks of one template that runs into a resource limit part way.
struct LimitedBurst {
  std::shared_ptr<Template> tmpl;
  std::vector<std::unique_ptr<Sandbox>> children;
  std::string failure;  ///< the error that stopped the burst ("" if none did)
  bool typed = false;   ///< it was a forkvm::Error
  std::map<int, std::string> fds_before;  ///< fd_table() before the burst
};

/// Forks children of a template of the parent, with `resource`'s soft limit lowered to
/// `limit(fds open now)`, until one fails (at most `most`); the limit is restored afterwards.
LimitedBurst fork_until_limit(int resource, const char* what, int most,
                              const std::function<rlim_t(size_t fds_now)>& limit) {
  LimitedBurst b;
  b.tmpl = parent().make_template();
  EXPECT_TRUE(wait_for_shell_pool(60s));
  Sandbox::wait_for_teardowns();
  b.fds_before = fd_table();
  rlimit saved{};
  EXPECT_EQ(getrlimit(resource, &saved), 0);
  rlimit tight = saved;
  tight.rlim_cur = limit(b.fds_before.size());
  EXPECT_EQ(setrlimit(resource, &tight), 0);
  step(std::string("fork until the ") + what + " limit stops one");
  for (int i = 0; i < most && b.failure.empty(); ++i) {
    try {
      b.children.push_back(b.tmpl->fork(fork_config()));
    } catch (const Error& e) {
      b.failure = e.what();
      b.typed = true;
    } catch (const std::exception& e) {
      b.failure = e.what();
    }
  }
  EXPECT_EQ(setrlimit(resource, &saved), 0);
  step("stopped after " + std::to_string(b.children.size()) + " children: " + b.failure.substr(0, 200));
  return b;
}

/// After a burst stopped by a limit: the children made before, the parent and a new fork
/// answer; once all are shut down the pool is full again and no descriptor leaked.
void expect_everything_goes_on(LimitedBurst& b) {
  for (size_t i = 0; i < b.children.size(); ++i) expect_answers(*b.children[i], "c" + std::to_string(i));
  expect_answers(parent(), "parent");
  auto after = b.tmpl->fork(fork_config());
  expect_answers(*after, "after");
  after->shutdown();
  for (auto& c : b.children) c->shutdown();
  b.children.clear();
  b.tmpl.reset();
  expect_pool_full();
  Sandbox::wait_for_teardowns();
  // The same descriptors as before the burst: more is a leak; fewer means a VM of the pool
  // went without one of its descriptors (as VMs built while KVM_GET_STATS_FD hit the limit
  // once did). One that another thread is closing as we look gets a bounded wait.
  std::map<int, std::string> now = fd_table();
  for (const auto give_up = Clock::now() + 10s; now.size() != b.fds_before.size() && Clock::now() < give_up;) {
    std::this_thread::sleep_for(100ms);
    now = fd_table();
  }
  EXPECT_EQ(now.size(), b.fds_before.size()) << "descriptors leaked or lost by the failed fork or its siblings:\n"
                                             << fd_changes(b.fds_before, now);
}

TEST_F(ShellPoolTest, OutOfDescriptorsMidBurstFailsThatForkWithATypedError) {
  // Room for a few children (each holds some tens of descriptors), then none.
  LimitedBurst b = fork_until_limit(RLIMIT_NOFILE, "descriptor", 40,
                                    [](size_t fds) { return static_cast<rlim_t>(fds + 120); });
  ASSERT_FALSE(b.failure.empty()) << "40 children fit in the limit: the test proved nothing";
  EXPECT_TRUE(b.typed) << "not a forkvm::Error: " << b.failure;
  EXPECT_NE(b.failure.find("RLIMIT_NOFILE"), std::string::npos) << "the error names the limit: " << b.failure;
  expect_everything_goes_on(b);
}

/// This process's virtual memory size (VmSize of /proc/self/status), in bytes.
uint64_t vm_size() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  uint64_t kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::sscanf(line, "VmSize: %lu kB", &kib) == 1) break;
  }
  std::fclose(f);
  return kib << 10;
}

TEST_F(ShellPoolTest, OutOfAddressSpaceMidBurstFailsThatForkWithATypedError) {
  // Room for a few more guests' RAM (each child reserves kMemoryMib of address space, plus
  // thread stacks), then none: guest memory, a thread or an allocation fails part way.
  LimitedBurst b = fork_until_limit(RLIMIT_AS, "address-space", 20, [](size_t) {
    return static_cast<rlim_t>(vm_size() + 3 * ((kMemoryMib + 48) << 20));
  });
  ASSERT_FALSE(b.failure.empty()) << "20 children fit in the limit: the test proved nothing";
  EXPECT_TRUE(b.typed) << "not a forkvm::Error: " << b.failure;
  expect_everything_goes_on(b);
}

/// Makes the calling thread's KVM_CREATE_VM fail with ENOMEM, as the kernel answers when it
/// cannot allocate a VM, and allows every other call (this thread only: no TSYNC). Returns
/// whether the filter is in place.
bool fail_kvm_create_vm_on_this_thread() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return false;
  const bool ok =
      seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOMEM), SCMP_SYS(ioctl), 1,
                       SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, KVM_CREATE_VM)) == 0 &&
      seccomp_load(ctx) == 0;  // sets no-new-privs for this thread (libseccomp's default)
  seccomp_release(ctx);
  return ok;
}

TEST_F(ShellPoolTest, OutOfKvmVmsMidBurstFailsThatForkWithATypedError) {
  // KVM keeps no count of VMs: KVM_CREATE_VM fails (ENOMEM) when the host cannot allocate one,
  // e.g. at a memory cgroup's limit. One thread of the burst meets that failure, injected with
  // a seccomp filter on that thread alone; with the shell pool off it builds its VM inline, so
  // it calls KVM_CREATE_VM itself. The other threads' forks and the pool go on.
  LimitedBurst b;
  b.tmpl = parent().make_template();
  ASSERT_TRUE(wait_for_shell_pool(60s));
  Sandbox::wait_for_teardowns();
  b.fds_before = fd_table();
  step("two children, then a fork on a thread whose KVM_CREATE_VM fails");
  for (int i = 0; i < 2; ++i) b.children.push_back(b.tmpl->fork(fork_config()));
  ShellPoolOptions off;
  off.per_shape = 0;
  configure_shell_pool(off);
  bool filtered = false;
  std::string op;
  int err = 0;
  std::thread([&] {
    filtered = fail_kvm_create_vm_on_this_thread();
    if (!filtered) return;
    try {
      b.children.push_back(b.tmpl->fork(fork_config()));
    } catch (const KvmError& e) {
      b.failure = e.what();
      b.typed = true;
      op = e.op();
      err = e.err();
    } catch (const Error& e) {
      b.failure = e.what();
      b.typed = true;
    } catch (const std::exception& e) {
      b.failure = e.what();
    }
  }).join();
  configure_shell_pool(ShellPoolOptions{});
  ASSERT_TRUE(filtered) << "the kernel refused the test's seccomp filter";
  step("failed fork: " + b.failure.substr(0, 200));
  ASSERT_FALSE(b.failure.empty()) << "the fork succeeded: it did not call KVM_CREATE_VM";
  EXPECT_TRUE(b.typed) << "not a forkvm::Error: " << b.failure;
  EXPECT_EQ(op, "KVM_CREATE_VM") << b.failure;
  EXPECT_EQ(err, ENOMEM) << b.failure;
  EXPECT_EQ(b.children.size(), 2u);
  expect_everything_goes_on(b);
}

}  // namespace
}  // namespace forkvm::e2e
