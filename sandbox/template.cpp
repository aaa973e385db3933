// forkvm::Template: an image plus a pool of VMs prepared ahead of time. A fork takes a pooled
// VM (or prepares one), launches it (state restored, vCPUs started) and hands it to a new
// Sandbox, which connects to the agent and gives the child its own identity.
#include "forkvm/template.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "base/retry_backoff.hpp"
#include "base/thread_launcher.hpp"
#include "sandbox/refill_hold.hpp"
#include "sandbox/sandbox_impl.hpp"
#include "sandbox/template_testing.hpp"

namespace forkvm {
namespace {

using Clock = std::chrono::steady_clock;

/// The longest a warm-up child's exec(["true"]) may take (TemplateOptions::warm_up).
constexpr std::chrono::seconds kWarmUpExec{30};

/// A VM made by Vm::prepare with its private socket directory; removes the directory when it
/// is destroyed without having been handed to a Sandbox.
struct PreparedVm {
  std::unique_ptr<Vm> vm;
  std::string temp_dir;
  std::string socket_path;
  VmPrefault prefaulted;  // guest memory taken ahead (TemplateOptions::prefault)
  /// The image's first touches prefault() last ran with (whatever it took): a pooled VM takes
  /// them again when the image learned more (VmImage::first_touches() grows).
  std::shared_ptr<const TouchedMemory> prefaulted_with;

  PreparedVm() = default;
  // The moved-from object must not remove the directory: exchange, not a defaulted move (a
  // moved-from std::string is only "valid but unspecified").
  PreparedVm(PreparedVm&& other) noexcept
      : vm(std::move(other.vm)),
        temp_dir(std::exchange(other.temp_dir, {})),
        socket_path(std::move(other.socket_path)),
        prefaulted(std::move(other.prefaulted)),
        prefaulted_with(std::move(other.prefaulted_with)) {}
  PreparedVm& operator=(PreparedVm&& other) noexcept {
    discard();
    vm = std::move(other.vm);
    temp_dir = std::exchange(other.temp_dir, {});
    socket_path = std::move(other.socket_path);
    prefaulted = std::move(other.prefaulted);
    prefaulted_with = std::move(other.prefaulted_with);
    return *this;
  }
  ~PreparedVm() { discard(); }

  void discard() noexcept {
    vm.reset();  // stops nothing that ran; closes the VM and its listening socket
    if (!temp_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(temp_dir, ec);
      temp_dir.clear();
    }
  }
};

/// What a template's children tell it at the end of their first exec
/// (Sandbox::Impl::after_first_exec). Shared with the children's hooks, which may outlive the
/// Template: the callbacks are set while the Template lives and cleared (under mu) before it
/// goes, so a hook that runs later finds them empty. They run with mu held and take the pool's
/// lock: the only order the two are taken together in.
struct ChildLink {
  std::mutex mu;
  /// Tells the refill thread that a child taught the image first touches, or more of them
  /// (VmImage::first_touches(), which every VM the template prepares afterwards takes:
  /// TemplateOptions::prefault), so that the VMs pooled before take them too.
  std::function<void()> learned;  // guarded by mu
  /// Tells the refill thread that a child holding it (RefillHold::taken) finished its first
  /// exec.
  std::function<void()> answered;  // guarded by mu
};

}  // namespace

struct Template::Impl {
  std::shared_ptr<const VmImage> image;
  TemplateOptions options;
  std::shared_ptr<ChildLink> link = std::make_shared<ChildLink>();

  std::mutex mu;
  std::condition_variable cv;
  std::deque<PreparedVm> pool;  // guarded by mu
  bool stopping = false;        // guarded by mu
  /// The hot pages were learned after VMs now in the pool were prepared (ChildLink::learned):
  /// the refill thread prefaults those. Guarded by mu.
  bool hot_learned = false;
  TemplateStats counts;         // guarded by mu; pooled is filled in by stats()
  RetryBackoff backoff;         // guarded by mu
  RefillHold hold{std::chrono::milliseconds(0)};  // guarded by mu; options.refill_hold
  /// Cancels the warm-up child's agent connect when the template goes (warm_up()).
  std::stop_source warm_stop;
  std::thread refill;

  ~Impl() {
    {
      std::lock_guard lock(link->mu);  // children's hooks may outlive this
      link->learned = nullptr;
      link->answered = nullptr;
    }
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    warm_stop.request_stop();
    cv.notify_all();
    if (refill.joinable()) refill.join();
  }

  /// Template::fork(): here so that the refill thread's warm-up child is made the same way.
  std::unique_ptr<Sandbox> fork(const ForkConfig& config, std::stop_token stop);

  /// TemplateOptions::warm_up, on the refill thread before it fills the pool: one child of
  /// its own, made as fork() makes one, answers exec(["true"]), whose end teaches the image
  /// its first touches (Vm::teach_first_touches, through the child's hook like any child's),
  /// and is shut down. Skipped when the image knows them already (another Template, a
  /// restore, or a kept entry taught it), or has a NIC and the template gives none. Its
  /// outcome goes to stats(); a failure is not retried (the first caller's child then teaches,
  /// as without a warm-up). The template going away cancels its connect (warm_stop); its exec
  /// is bounded by kWarmUpExec.
  void warm_up() {
    if (!options.warm_up || !options.prefault || image->first_touches()) return;
    if (image->has_net() && !options.net) return;
    std::string error;
    try {
      ForkConfig config;
      std::unique_ptr<Sandbox> child = fork(config, warm_stop.get_token());
      ExecOptions exec;
      exec.timeout = kWarmUpExec;
      const ExecResult r = child->exec({"true"}, exec);
      if (!r.ok()) error = "exec([\"true\"]) failed: " + r.outcome();
      child->shutdown();
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "unknown error";
    }
    std::lock_guard lock(mu);
    counts.warmed_up = error.empty();
    counts.warm_up_error = std::move(error);
  }

  /// A VM for the image with its own socket dir and vsock CID, not launched. Its NIC (for an
  /// image with one) is `net`, else TemplateOptions::net's. It also takes the pages children
  /// touch first, once they are known: on the pool's refill thread, off every fork's path, or
  /// on fork()'s when it prepares its own VM, where they save the child's first exec more time
  /// than they cost (each page copied or mapped ahead is a host page fault the guest does not
  /// stop on).
  /// Ahead, not behind the guest: tried (2026-12-05, kvm-lab NPT L1, `forkvm-bench fork
  /// --paths 4`, shell pool warm, same run), a helper thread started with the vCPUs took the
  /// same 11 MiB in 14-16 ms beside the guest and brought call -> vCPUs ready from 30 to 11 ms,
  /// but the child's first exec went from 56 to 115 ms and call -> first answer was 1.44x: the
  /// NPT/EPT premap (KVM_PRE_FAULT_MEMORY) cannot run behind, as it takes the vCPU's mutex that
  /// KVM_RUN holds, and the ~1,100 nested page faults it saves cost more than the whole prefault.
  PreparedVm prepare(const std::optional<NetConfig>& net = std::nullopt) {
    PreparedVm p;
    p.temp_dir = make_temp_dir(options.runtime_dir);
    p.socket_path = socket_in(p.temp_dir, "TemplateOptions::runtime_dir");
    RestoreOptions ro;
    ro.vsock = VsockConfig{next_restore_cid(), p.socket_path};
    ro.console = options.console;
    ro.kvm_device = options.kvm_device;
    if (image->has_net()) {
      if (net) {
        ro.net = net;
      } else if (options.net) {
        ro.net = options.net();
      } else {
        throw ConfigError("Template: the image's machine has a network device; give each child "
                          "its own NIC with TemplateOptions::net or ForkConfig::net");
      }
    }
    p.vm = Vm::prepare(image, ro);
    prefault(p);
    return p;
  }

  /// Takes the hot pages into a prepared VM, once they are known (TemplateOptions::prefault),
  /// and again when the image learned more since: the pages it has already cost little the
  /// second time (present in the host's and KVM's tables).
  void prefault(PreparedVm& p) {
    if (!options.prefault) return;
    // Learned by this template's children, or by any other VM of the image.
    std::shared_ptr<const TouchedMemory> touched = image->first_touches();
    if (!touched || touched == p.prefaulted_with) return;
    p.prefaulted = prefault_or_log(*p.vm, *touched, options.premap);
    p.prefaulted_with = std::move(touched);
  }

  /// Whether a pooled VM has not taken the image's latest first touches.
  bool behind(const PreparedVm& p) const {
    if (!options.prefault) return false;
    const std::shared_ptr<const TouchedMemory> touched = image->first_touches();
    return touched && touched != p.prefaulted_with;
  }

  /// With mu held (via `lock`): once the hot pages are learned, prefaults the VMs that were
  /// pooled before, one at a time out of the pool (a fork meanwhile takes another, or builds
  /// its own), and puts each back. Returns false when stopping.
  bool prefault_pooled(std::unique_lock<std::mutex>& lock) {
    hot_learned = false;
    if (!options.prefault) return true;
    for (;;) {
      if (stopping) return false;
      auto it = std::find_if(pool.begin(), pool.end(),
                             [this](const PreparedVm& p) { return behind(p); });
      if (it == pool.end()) return true;
      PreparedVm p = std::move(*it);
      pool.erase(it);
      lock.unlock();
      prefault(p);  // records the set it ran with, whatever it took
      lock.lock();
      pool.push_back(std::move(p));
    }
  }

  /// Keeps the pool at options.pool_size. A failure is reported on stderr (once per distinct
  /// message) and in stats(), and retried after backoff's wait; fork() meanwhile prepares its VM
  /// itself and reports the error to its caller.
  void refill_loop() {
    warm_up();
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock,
              [&] { return stopping || hot_learned || pool.size() < options.pool_size; });
      if (stopping) return;
      if (hot_learned) {
        if (!prefault_pooled(lock)) return;
        continue;
      }
      if (const auto until = hold.holds(pool.size(), Clock::now())) {
        // A child's answer, a fork that empties the pool, or the end of the template wakes it.
        ++counts.refill_holds;
        cv.wait_until(lock, *until);
        continue;
      }
      lock.unlock();
      std::string error;
      PreparedVm p;
      try {
        p = prepare();
      } catch (const std::exception& e) {
        error = e.what();
        if (error.empty()) error = "unknown error";
      }
      lock.lock();
      if (!error.empty()) {
        if (counts.last_refill_error != error) {
          std::fprintf(stderr, "forkvm: template pool: cannot prepare a VM: %s\n", error.c_str());
        }
        ++counts.refill_failures;
        counts.last_refill_error = std::move(error);
        cv.wait_for(lock, backoff.failed(), [&] { return stopping; });
        continue;
      }
      backoff.succeeded();
      ++counts.refilled;
      counts.last_refill_error.clear();
      pool.push_back(std::move(p));
    }
  }
};

Template::Template(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Template::~Template() = default;

std::shared_ptr<Template> Template::open(const std::string& dir, const TemplateOptions& options) {
  return from_image(VmImage::open(dir, options.verify_memory), options);
}

std::shared_ptr<Template> Template::from_image(std::shared_ptr<const VmImage> image,
                                               const TemplateOptions& options) {
  if (!image) throw ConfigError("Template: no image");
  if (!image->has_vsock()) {
    throw ConfigError("Template: the image's machine has no vsock device, so no agent can be "
                      "reached (make snapshots of sandboxes, not of bare VMs)");
  }
  if (image->has_secrets() && !options.allow_secrets) {
    throw ConfigError("Template: the image was taken while secrets were set in the guest "
                      "(Sandbox::set_secret), so every child would hold them: clear them first "
                      "(Sandbox::clear_secrets) or opt in with TemplateOptions::allow_secrets "
                      "(ForkConfig::allow_secrets for Sandbox::fork)");
  }
  auto impl = std::make_unique<Impl>();
  impl->image = std::move(image);
  impl->options = options;
  auto t = std::make_shared<Template>(std::move(impl));
  if (options.pool_size > 0) {
    Impl* raw = t->impl_.get();
    {
      // Called by a child's hook (ChildLink lock held, then the pool's).
      std::lock_guard lock(raw->link->mu);
      raw->link->learned = [raw] {
        {
          std::lock_guard pool_lock(raw->mu);
          raw->hot_learned = true;
        }
        raw->cv.notify_all();
      };
      raw->link->answered = [raw] {
        {
          std::lock_guard pool_lock(raw->mu);
          raw->hold.answered();
        }
        raw->cv.notify_all();
      };
    }
    raw->hold = RefillHold(options.refill_hold);
    raw->refill = std::thread([raw] { raw->refill_loop(); });
  }
  return t;
}

size_t Template::pooled() const {
  std::lock_guard lock(impl_->mu);
  return impl_->pool.size();
}

TemplateStats Template::stats() const {
  std::lock_guard lock(impl_->mu);
  TemplateStats s = impl_->counts;
  s.pooled = impl_->pool.size();
  s.next_refill_backoff = impl_->backoff.next();
  return s;
}

std::shared_ptr<const VmImage> Template::image() const noexcept { return impl_->image; }

size_t TemplateTesting::stop_pooled(Template& t) {
  std::lock_guard lock(t.impl_->mu);
  for (PreparedVm& p : t.impl_->pool) p.vm->request_stop();
  return t.impl_->pool.size();
}

// Turns a launched child VM into a ready Sandbox: the last step of Template::fork below, and so
// of every fork (Sandbox::fork makes a one-off Template of its frozen image).
void Sandbox::Impl::adopt(std::unique_ptr<Vm> child, std::string child_temp_dir,
                          std::string child_socket, Clock::time_point deadline,
                          const std::stop_token& stop) {
  {
    std::lock_guard lock(mutex);
    vm = std::move(child);
  }
  temp_dir = std::move(child_temp_dir);
  socket_path = std::move(child_socket);
  // The image's VM was ready, so this one is: it carries the parent's agent connection, or
  // the agent listens again once the guest has handled the RST of the old one. A carried
  // connection gets the child's identity first of all (attach_agent()); the egress proxy then
  // listens before the caller has the child, and so before any request of the caller runs
  // in it.
  const bool carried = attach_agent();
  start_egress();
  if (!carried) connect_agent_timed(deadline, stop);  // identity included
  install_egress_in_guest();
  state = SandboxState::kReady;
  watcher = start_thread([this] { watch(); });  // its stack kept small, as every per-VM thread's
}

std::unique_ptr<Sandbox> Template::fork(const ForkConfig& config, std::stop_token stop) {
  return impl_->fork(config, std::move(stop));
}

std::unique_ptr<Sandbox> Template::Impl::fork(const ForkConfig& config, std::stop_token stop) {
  const auto t0 = Clock::now();
  check_hostname(config.hostname, "ForkConfig::hostname");
  if (stop.stop_requested()) throw CancelledError("fork cancelled");
  const auto deadline = t0 + config.boot_timeout;
  PreparedVm p;
  bool pooled = false;
  bool holds_refill = false;  // this child's first exec ends the refill's hold
  std::vector<PreparedVm> dead;  // destroyed after the lock (joins their device workers)
  {
    std::lock_guard lock(mu);
    // A child with its own NIC cannot use a pooled VM: those have TemplateOptions::net's.
    while (!pool.empty() && !config.net) {
      p = std::move(pool.front());
      pool.pop_front();
      // A pooled VM's devices run (Vm::prepare activates them); one whose worker failed
      // meanwhile stopped its VM, which is discarded, never handed out.
      if (!p.vm->wait(std::chrono::milliseconds(0))) {
        pooled = true;
        holds_refill = hold.taken(pool.size(), Clock::now());
        break;
      }
      ++counts.discarded;
      dead.push_back(std::move(p));
    }
  }
  // The refill thread makes the next ones, told after this fork's launch(): woken before, it
  // takes a CPU from the launching thread.
  const bool wake_refill = pooled || !dead.empty();
  dead.clear();
  try {
    if (!pooled) p = prepare(config.net);
    p.vm->launch();  // on a throw, p's destructor destroys the VM and its directory
  } catch (...) {
    if (wake_refill) cv.notify_all();
    throw;
  }
  const auto vcpus_ready = Clock::now();
  if (wake_refill) cv.notify_all();

  ForkTimings timings;
  timings.vm = p.vm->build_phases();
  if (pooled) {  // prepared ahead of time, off this fork's path
    timings.vm.create_vm = timings.vm.memory = timings.vm.devices = timings.vm.vcpus =
        timings.vm.state_ahead = timings.vm.activate = timings.vm.threads = timings.vm.prefault = {};
  }
  timings.pooled = pooled;
  timings.prefaulted_bytes = p.prefaulted.host_bytes;
  timings.premapped_bytes = p.prefaulted.stage2_bytes;
  timings.premap_unavailable = p.prefaulted.stage2_unavailable;
  timings.to_vcpus_ready = vcpus_ready - t0;

  auto impl = std::make_unique<Sandbox::Impl>();
  impl->config.runtime_dir = options.runtime_dir;
  impl->config.boot_timeout = config.boot_timeout;
  impl->config.request_timeout = config.request_timeout;
  impl->config.hostname = config.hostname;
  impl->config.egress = config.egress ? *config.egress
                                      : options.egress.value_or(EgressConfig{});
  impl->config.vm.kvm_device = options.kvm_device;
  impl->config.vm.vcpus = image->vcpus();
  impl->config.vm.memory_mib = image->memory_mib();
  impl->fork_timings = timings;  // adopt() adds agent_connect and identity
  // Until the image has learned from its first few VMs (Vm::teach_first_touches() returns
  // false at once after that), each child may add what its first exec touched.
  const bool learn = options.prefault;
  if (learn || holds_refill) {
    impl->after_first_exec->set([link = this->link, learn, holds_refill](const Vm& vm) {
      if (holds_refill) {
        std::lock_guard lock(link->mu);
        if (link->answered) link->answered();
      }
      // False when it added nothing, or the image has learned already.
      if (!learn || !vm.teach_first_touches()) return;
      std::lock_guard lock(link->mu);
      if (link->learned) link->learned();
    });
  }
  // From here the Sandbox::Impl owns the VM and its directory; on a throw its destructor
  // shuts the child down and removes them.
  impl->adopt(std::move(p.vm), std::exchange(p.temp_dir, {}), p.socket_path, deadline, stop);
  impl->fork_timings.to_ready = Clock::now() - t0;
  impl->boot_time = impl->fork_timings.to_ready;
  return std::unique_ptr<Sandbox>(new Sandbox(std::move(impl)));
}

}  // namespace forkvm
