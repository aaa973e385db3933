// forkvm::Sandbox: boots a Vm with a vsock device, waits for the agent, and forwards requests
// to an AgentClient. A watcher thread notices a VM that stops by itself and fails whatever is
// pending with GuestError (the console tail says why).
#include "forkvm/sandbox.hpp"

#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "base/text.hpp"
#include "base/thread_launcher.hpp"
#include "contract/protocol/field_rules.hpp"
#include "contract/protocol/hello.hpp"
#include "contract/protocol/messages.hpp"
#include "contract/root_disk.hpp"
#include "net/egress_proxy.hpp"
#include "net/port_forward.hpp"
#include "sandbox/exec_process.hpp"
#include "sandbox/host_dirs.hpp"
#include "sandbox/reaper.hpp"
#include "sandbox/sandbox_impl.hpp"
#include "sandbox/stale_dirs.hpp"

namespace forkvm {
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {
/// A carried connection's identity answered later than this: set the guest's clock again
/// (watch()). Well above a fork's usual answer (about 1 ms on hardware, up to a few hundred in
/// kvm-lab, where a second request would slow the child's first exec), well below what a clock
/// check notices.
constexpr milliseconds kClockResendAfter{1000};

/// Where a guest is that does not answer, in one wording for the boot timeout, the agent
/// connect timeout and Sandbox::progress_report(): `vcpus` (Vm::progress_report), `more` (lines
/// of its own, or nothing), then `console` (Vm::console_tail) made printable.
std::string guest_report(const std::string& vcpus, const std::string& more, const std::string& console) {
  return vcpus + more + "\n--- guest console (tail) ---\n" + printable_lines(console);
}

/// guest_report() of `vm` as it is now.
std::string where_the_guest_is(Vm& vm) { return guest_report(vm.progress_report(), {}, vm.console_tail()); }

/// Whether the agent answers a ping on a connection of its own (made with `o`, the sandbox's
/// agent_client_options()), for a request that went unanswered on the sandbox's: an answer
/// means the agent's loop runs, so the request is stuck in its connection or its command; none
/// means the agent itself is stuck or gone. Takes at most ~4 s (2 s to connect, 2 s for the
/// answer).
std::string probe_agent(AgentClientOptions o) {
  // Short waits, and no connection_lost_error: a report must not wait on the VM to stop.
  o.connection_lost_error = nullptr;
  o.connect_timeout = milliseconds(2000);
  o.request_timeout = milliseconds(2000);
  const auto t0 = Clock::now();
  try {
    auto c = AgentClient::connect(o);
    c->ping(milliseconds(2000));
    return "answered a ping in " + millis_text(std::chrono::duration_cast<milliseconds>(Clock::now() - t0)) +
           ": its loop runs, so an unanswered request is stuck in its own connection or command";
  } catch (const std::exception& e) {
    return std::string("did not answer (") + e.what() + "): the agent itself is stuck or gone";
  }
}
}  // namespace

std::string make_temp_dir(const std::string& runtime_dir) {
  std::string base = runtime_dir;
  if (base.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  // Once per process and directory, on the first sandbox: the dirs that crashed runs left.
  stale_dirs::remove_stale_once(base);
  std::string templ = base + "/forkvm-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    throw ConfigError("cannot create a temp dir in " + base + ": " + errno_text(errno));
  }
  try {
    stale_dirs::record_owner(templ);
  } catch (...) {
    ::rmdir(templ.c_str());
    throw;
  }
  return templ;
}

uint64_t next_restore_cid() {
  static std::atomic<uint64_t> counter{0};
  constexpr uint64_t kFirst = 3;
  constexpr uint64_t kSpan = 0xFFFFFFFEull - kFirst;  // CIDs kFirst .. 2^32 - 3
  const uint64_t offset = static_cast<uint64_t>(::getpid()) << 12;
  return kFirst + (offset + counter.fetch_add(1)) % kSpan;
}

std::string socket_in(const std::string& temp_dir, const char* what) {
  std::string path = temp_dir + "/vsock.sock";
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    throw ConfigError("the vsock socket path " + path + " is longer than " +
                      std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                      " bytes: use a shorter " + what);
  }
  return path;
}

VmPrefault prefault_or_log(Vm& vm, const TouchedMemory& touched, bool stage2) {
  try {
    return vm.prefault_memory(touched, stage2);
  } catch (const Error& e) {
    std::fprintf(stderr, "forkvm: no prefault for this VM: %s\n", e.what());
    return {};
  }
}

void check_hostname(const std::optional<std::string>& hostname, const char* option) {
  if (hostname && !protocol::valid_hostname(*hostname)) {
    throw ConfigError(std::string(option) + " '" + hostname->substr(0, 80) +
                      "' is not 1..64 characters of [A-Za-z0-9.-]");
  }
}

std::string_view to_string(SandboxState state) noexcept {
  switch (state) {
    case SandboxState::kBooting: return "booting";
    case SandboxState::kReady: return "ready";
    case SandboxState::kFailed: return "failed";
    case SandboxState::kShutDown: return "shut-down";
  }
  return "unknown";
}

GuestError Sandbox::Impl::vm_stopped_error(const VmResult& r, const std::string& context) {
  return GuestError(context + ": the VM stopped (" + std::string(to_string(r.reason)) +
                        (r.detail.empty() ? "" : ": " + r.detail) + ")",
                    tail());
}

std::string Sandbox::Impl::tail() {
  std::lock_guard lock(mutex);
  return vm ? vm->console_tail() : final_tail;
}

void Sandbox::Impl::boot(std::stop_token stop) {
  if (config.vm.vsock) throw ConfigError("SandboxConfig::vm.vsock must be unset: the sandbox adds its own");
  check_hostname(config.hostname, "SandboxConfig::hostname");
  if (config.vm.extra_cmdline.find("forkvm.after_ready=") != std::string::npos) {
    throw ConfigError("SandboxConfig::vm.extra_cmdline must not set forkvm.after_ready: the "
                      "sandbox needs forkvm.after_ready=serve");
  }
  for (const char* key : {kRootCmdlineKey, kRootUpperCmdlineKey}) {
    if (config.vm.extra_cmdline.find(std::string(key) + "=") != std::string::npos) {
      throw ConfigError(std::string("SandboxConfig::vm.extra_cmdline must not set ") + key +
                        ": use SandboxConfig::root_filesystem and root_upper_disk");
    }
  }
  if (!config.root_upper_disk.empty()) {
    const auto it = std::find_if(config.vm.disks.begin(), config.vm.disks.end(),
                                 [&](const DiskConfig& d) { return d.id == config.root_upper_disk; });
    if (config.root_filesystem.empty() || it == config.vm.disks.end() || it->read_only) {
      throw ConfigError("SandboxConfig::root_upper_disk '" + config.root_upper_disk +
                        "' must name a writable disk of vm.disks (by its id), with a root_filesystem");
    }
  }
  for (size_t i = 0; i < config.host_dirs.size(); ++i) host_dirs::check(config.host_dirs[i], i);
  temp_dir = make_temp_dir(config.runtime_dir);
  socket_path = socket_in(temp_dir, "SandboxConfig::runtime_dir");
  VmConfig vc = config.vm;
  vc.vsock = VsockConfig{3, socket_path};
  vc.extra_cmdline += vc.extra_cmdline.empty() ? "" : " ";
  vc.extra_cmdline += "forkvm.after_ready=serve";
  attach_root_filesystem(vc, config.root_filesystem);
  if (!config.root_filesystem.empty()) {
    if (!config.root_upper_disk.empty()) {
      vc.extra_cmdline += std::string(" ") + kRootUpperCmdlineKey + "=" + config.root_upper_disk;
    }
  }
  // Host directories: packed into images in the temp dir (removed with it), attached last.
  for (size_t i = 0; i < config.host_dirs.size(); ++i) {
    DiskConfig d;
    d.path = temp_dir + "/" + host_dirs::disk_id(i) + ".ext4";
    // Writable: copy-on-write over the packed image, so the sandbox forks (each child's
    // writes are its own); the changes come back through the agent, not from the image.
    d.read_only = !config.host_dirs[i].writable;
    d.copy_on_write = config.host_dirs[i].writable;
    d.id = host_dirs::disk_id(i);
    host_dirs::pack(config.host_dirs[i], d.path);
    vc.disks.push_back(std::move(d));
  }
  start_egress();  // checks the policy before the VM exists; listening before the guest runs
  {
    auto created = Vm::create(vc);
    std::lock_guard lock(mutex);
    vm = std::move(created);
  }
  const auto t0 = Clock::now();
  const auto deadline = t0 + config.boot_timeout;
  vm->start();
  // Short slices so a stop request is noticed promptly; wait_ready throws GuestError if the
  // VM stops first.
  while (!vm->wait_ready(milliseconds(50))) {
    if (stop.stop_requested()) throw CancelledError("sandbox boot cancelled");
    if (Clock::now() >= deadline) {
      throw TimeoutError("the guest agent did not signal ready within " + millis_text(config.boot_timeout) +
                         ": " + where_the_guest_is(*vm));
    }
  }
  connect_agent(deadline, stop);  // the identity is its first request
  if (!config.env.empty()) client.load()->set_env(config.env);
  install_egress_in_guest();
  for (size_t i = 0; i < config.host_dirs.size(); ++i) {
    host_dirs::mount(*client.load(), config.host_dirs[i], i);
  }
  boot_time = Clock::now() - t0;
  state = SandboxState::kReady;
  watcher = start_thread([this] { watch(); });
}

GuestIdentity Sandbox::Impl::identity() const {
  // The guest has no battery-backed clock (CMOS reads 0), and a restored guest's clock and
  // RNG state are the snapshot's: give it the host's wall clock and fresh host entropy (empty
  // entropy: 64 bytes of getrandom) before anyone else talks to it.
  GuestIdentity identity;
  identity.wall_clock = std::chrono::system_clock::now();
  identity.hostname = config.hostname;
  // A restored or forked VM's NIC has its own MAC while the guest's driver still holds the one
  // it read at probe, in the VM the snapshot came from: the agent moves the interface over.
  identity.mac = vm->net_mac_change();
  return identity;
}

void Sandbox::Impl::restore(const std::string& dir, const SandboxRestoreConfig& rc,
                            std::stop_token stop) {
  check_hostname(rc.hostname, "SandboxRestoreConfig::hostname");
  config.runtime_dir = rc.runtime_dir;
  config.boot_timeout = rc.boot_timeout;
  config.request_timeout = rc.request_timeout;
  config.hostname = rc.hostname;
  config.vm.console = rc.console;
  config.egress = rc.egress;
  const auto t0 = Clock::now();
  const auto deadline = t0 + config.boot_timeout;
  temp_dir = make_temp_dir(config.runtime_dir);
  socket_path = socket_in(temp_dir, "SandboxRestoreConfig::runtime_dir");
  if (stop.stop_requested()) throw CancelledError("sandbox restore cancelled");
  start_egress();
  RestoreOptions ro;
  ro.vsock = VsockConfig{next_restore_cid(), socket_path};
  ro.console = rc.console;
  ro.verify_memory = rc.verify_memory;
  ro.net = rc.net;
  {
    const auto image = VmImage::open(dir, ro.verify_memory, ro.verify_disks);
    auto restored = Vm::prepare(image, ro);
    const std::shared_ptr<const TouchedMemory> hot = rc.prefault ? image->first_touches() : nullptr;
    if (hot) {
      const VmPrefault taken = prefault_or_log(*restored, *hot, true);
      fork_timings.prefaulted_bytes = taken.host_bytes;
      fork_timings.premapped_bytes = taken.stage2_bytes;
      fork_timings.premap_unavailable = taken.stage2_unavailable;
    }
    // The image learns from its first few VMs (returns at once after that).
    if (rc.prefault) after_first_exec->set([](const Vm& v) { v.teach_first_touches(); });
    restored->launch();
    std::lock_guard lock(mutex);
    vm = std::move(restored);
  }
  fork_timings.vm = vm->build_phases();
  fork_timings.to_vcpus_ready = Clock::now() - t0;
  // The snapshot's VM was ready, so this one is: it carries the agent connection the
  // snapshot's sandbox had, or the agent listens again once the guest has handled the RST of
  // its old connection (or, for an older snapshot, the TRANSPORT_RESET).
  if (!attach_agent()) connect_agent_timed(deadline, stop);  // identity included
  install_egress_in_guest();
  boot_time = Clock::now() - t0;
  fork_timings.to_ready = boot_time;
  state = SandboxState::kReady;
  watcher = start_thread([this] { watch(); });
}

void Sandbox::Impl::snapshot(const std::string& dir) {
  std::lock_guard once(shutdown_mutex);  // vm stays while we use it; one snapshot at a time
  if (state.load() != SandboxState::kReady) {
    throw InvalidStateError("cannot snapshot a sandbox that is " +
                            std::string(to_string(state.load())));
  }
  // Refused before the VM is touched.
  std::error_code ec;
  if (std::filesystem::symlink_status(dir, ec).type() != std::filesystem::file_type::not_found) {
    throw SnapshotError("snapshot: " + dir + " already exists" +
                        (ec ? " or cannot be checked: " + ec.message() : std::string()));
  }
  // The capture pauses the VM and leaves its agent connection alone: requests in flight wait
  // out the pause and go on (a VM restored from the snapshot carries it when it is quiet:
  // capture_options()).
  AgentClient::Quiet quiet;
  vm->snapshot(dir, capture_options(quiet));
}

void Sandbox::Impl::connect_agent_timed(Clock::time_point deadline, const std::stop_token& stop) {
  const auto t0 = Clock::now();
  const AgentConnected connected = connect_agent(deadline, stop);
  fork_timings.identity = connected.identity;
  fork_timings.agent_connect = Clock::now() - t0 - connected.identity;
  fork_timings.agent_accept = connected.accept;
  fork_timings.agent_attempts = connected.attempts;
}

CaptureOptions Sandbox::Impl::capture_options(AgentClient::Quiet& quiet) {
  CaptureOptions capture;
  if (AgentClient* c = client.load()) quiet = c->hold_quiet();
  if (quiet.quiet) {
    // Tagged with the protocol version the connection speaks: a VM made from the capture by
    // another forkvm build attaches only if it speaks that version too (attach_agent()).
    capture.carry_vsock.push_back({protocol::kAgentPort, client.load()->protocol_version()});
  } else if (quiet.hold.owns_lock()) {
    quiet.hold.unlock();  // nothing to keep still: let this sandbox's requests go on
  }
  return capture;
}

AgentClientOptions Sandbox::Impl::agent_client_options() {
  AgentClientOptions o;
  o.socket_path = socket_path;
  o.vsock_port = protocol::kAgentPort;
  o.request_timeout = config.request_timeout;
  o.connection_lost_error = [this](const std::string& reason) -> std::exception_ptr {
    // The VM's end of the socket closes when it stops; give the VM a moment to record why.
    if (auto r = vm->wait(milliseconds(500))) {
      return std::make_exception_ptr(vm_stopped_error(*r, "connection to the agent lost (" + reason + ")"));
    }
    return nullptr;
  };
  return o;
}

void Sandbox::Impl::require_no_agent() {
  std::lock_guard lock(mutex);
  if (owned_client) throw InvalidStateError("the sandbox is already connected to its agent");
}

bool Sandbox::Impl::attach_agent() {
  require_no_agent();
  const TakenVsockConnection taken = vm->take_vsock_connection(protocol::kAgentPort);
  if (taken.fd < 0) return false;
  if (!protocol::VersionRange{}.contains(taken.tag)) {
    // Captured by a forkvm speaking another protocol version: closing our end shuts the
    // connection down in the guest, and the caller connects anew (with a hello).
    ::close(taken.fd);
    return false;
  }
  const auto t0 = Clock::now();
  // The parent's client was quiet when the image was captured (capture_options()), speaking
  // the version in the tag with this very agent. The identity is the first frame on the
  // carried connection, written before anything else of the child is set up (the client's
  // reader thread, the egress proxy): in kvm-lab the guest took 13-26 ms to answer it, most of
  // it waking up after the restore, and the host's setup now runs beside that. Not waited for:
  // the agent handles frames in order and refuses every later request when the identity
  // fails, so no request runs in this guest before it has its own entropy, clock and hostname,
  // and the child's first request goes out at once, right behind it. The watcher checks the
  // answer (watch()).
  auto c = AgentClient::attach_with_identity(taken.fd, taken.tag, agent_client_options(),
                                             identity(), identity_answer);
  identity_sent_at = Clock::now();
  fork_timings.identity = Clock::now() - t0;
  fork_timings.agent_connect = {};
  fork_timings.agent_accept = {};
  fork_timings.agent_attempts = 0;
  fork_timings.agent_carried = true;
  std::lock_guard lock(mutex);
  client = c.get();
  owned_client = std::move(c);
  return true;
}

Sandbox::Impl::AgentConnected Sandbox::Impl::connect_agent(Clock::time_point deadline,
                                                           const std::stop_token& stop) {
  require_no_agent();
  AgentConnected made;
  AgentClientOptions o = agent_client_options();
  std::string last_error = "no attempt";
  // The ready signal comes before the agent listens on its port: retry until it answers.
  for (;;) {
    if (stop.stop_requested()) throw CancelledError("sandbox boot cancelled");
    if (auto r = vm->wait(milliseconds(0))) throw vm_stopped_error(*r, "while connecting to the agent");
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left <= milliseconds(0)) {
      throw TimeoutError("the guest agent did not answer within " + millis_text(config.boot_timeout) +
                         " (last attempt: " + last_error + ")\nwhere the guest is: " +
                         where_the_guest_is(*vm));
    }
    o.connect_timeout = std::min(left, milliseconds(2000));
    try {
      ++made.attempts;
      const auto t0 = Clock::now();
      auto c = AgentClient::connect(o);
      const auto t1 = Clock::now();
      made.accept = t1 - t0;
      // The first request is the identity, not a ping: its answer proves the agent serves,
      // and nothing runs in a restored or forked guest before it has its own entropy, clock
      // and hostname. Idempotent, so an attempt that fails here is simply made again.
      c->set_identity(identity());
      made.identity = Clock::now() - t1;
      std::lock_guard lock(mutex);
      client = c.get();
      owned_client = std::move(c);
      return made;
    } catch (const AgentUnreachableError& e) {
      last_error = e.what();
    } catch (const TimeoutError& e) {
      last_error = e.what();
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
}

void Sandbox::Impl::watch() {
  if (identity_answer) {
    // A carried connection's identity (attach_agent()): its answer comes right after the
    // child's first requests are sent. If it failed, the agent refuses everything on this
    // connection: the child cannot serve, and says why.
    try {
      identity_answer();
      // That identity carried the host's wall clock of before the child's vCPUs ran; the guest
      // set it when it reached the frame. On a loaded host that can be seconds later, and the
      // child's clock would stay behind by as much (seen: 4 s, with two kvm-lab VMs on two
      // cores): the guest runs now, so set the clock once more. Costs one request, and only
      // when the answer was slow; requests already sent ran with the earlier clock.
      if (Clock::now() - identity_sent_at > kClockResendAfter) {
        GuestIdentity again;
        again.wall_clock = std::chrono::system_clock::now();
        try {
          client.load()->set_identity(again);
        } catch (const std::exception&) {
          // Only the clock stays late. A connection or guest that fails shows on the caller's
          // next request, or below when the VM stops; a shutdown may have closed it meanwhile.
        }
      }
    } catch (const std::exception&) {
      if (!vm->wait(milliseconds(0))) {  // a VM that stopped is reported below instead
        auto expected = SandboxState::kReady;
        state.compare_exchange_strong(expected, SandboxState::kFailed);
        client.load()->close(std::current_exception());
        return;
      }
    }
  }
  for (;;) {
    {
      std::lock_guard lock(mutex);
      if (stop_watch) return;
    }
    // No polling: every way out ends the VM first (begin_shutdown() requests its stop after
    // setting stop_watch, finish_shutdown() stops it before joining), and that wakes this wait.
    // An idle sandbox's host threads then sleep until something happens.
    auto r = vm->wait(std::chrono::hours(1));
    if (!r) continue;
    {
      std::lock_guard lock(mutex);
      if (stop_watch) return;  // shutdown() stopped it
    }
    auto expected = SandboxState::kReady;
    state.compare_exchange_strong(expected, SandboxState::kFailed);
    // Not under `mutex`: close() joins the reader thread, whose connection_lost_error hook
    // takes it (tail()). vm stays valid: shutdown() joins this thread before resetting it.
    client.load()->close(std::make_exception_ptr(vm_stopped_error(*r, "sandbox request failed")));
    return;
  }
}

Sandbox::Impl::Impl() = default;
Sandbox::Impl::~Impl() { shutdown(); }

void Sandbox::Impl::shutdown() {
  begin_shutdown();
  finish_shutdown();
}

bool Sandbox::Impl::begin_shutdown() {
  std::lock_guard once(shutdown_mutex);
  if (state == SandboxState::kShutDown) return false;
  state = SandboxState::kShutDown;
  AgentClient* c = nullptr;
  {
    std::lock_guard lock(mutex);
    stop_watch = true;
    c = owned_client.get();
  }
  // Neither waits for a thread to end, only for a callback that is running to return.
  if (c != nullptr) {
    c->close_nowait(std::make_exception_ptr(InvalidStateError("the sandbox was shut down")));
  }
  if (vm) vm->request_stop();
  // No new connection finds the socket from here; its listener closes with the VM.
  if (!socket_path.empty()) ::unlink(socket_path.c_str());
  return true;
}

void Sandbox::Impl::hand_to_reaper(std::shared_ptr<Impl> impl) {
  sandbox::Remains remains;
  // The lambda keeps the Impl alive until its threads are joined, even once the Sandbox that
  // owned it is gone; the reaper drops it afterwards (the Impl may be destroyed there).
  remains.finish = [impl = std::move(impl)] { impl->finish_shutdown(); };
  sandbox::Reaper::instance().submit(std::move(remains));
}

void Sandbox::Impl::finish_shutdown() {
  std::lock_guard once(shutdown_mutex);
  if (std::exchange(shutdown_finished, true)) return;
  {
    AgentClient* c = nullptr;
    {
      std::lock_guard lock(mutex);
      c = owned_client.get();
    }
    // Not under `mutex`: close() joins the reader, whose hook takes it.
    if (c != nullptr) c->close(std::make_exception_ptr(InvalidStateError("the sandbox was shut down")));
  }
  if (vm) vm->stop();  // the guest stops running and the device threads end here
  if (watcher.joinable()) watcher.join();
  stop_network();
  sandbox::Remains remains;
  {
    std::lock_guard lock(mutex);
    if (vm) final_tail = vm->console_tail();
    {
      // A started process's wait() may still run the hook: not with this VM from here on.
      std::lock_guard hook_lock(after_first_exec->mutex);
      after_first_exec->vm = nullptr;
      after_first_exec->fn = nullptr;
    }
    remains.vm = std::move(vm);
  }
  remains.temp_dir = std::exchange(temp_dir, {});
  // Here, not submitted: this runs on the reaper already (hand_to_reaper()) or must finish
  // before the caller goes on (a sandbox whose create, restore or fork failed, ~Impl).
  sandbox::Reaper::tear_down(remains);
}

void Sandbox::wait_for_teardowns() { sandbox::Reaper::instance().drain(); }

AgentClient& Sandbox::Impl::ready_client() {
  switch (state.load()) {
    case SandboxState::kReady: {
      AgentClient* c = client.load();
      if (c != nullptr) return *c;
      break;
    }
    case SandboxState::kFailed: {
      std::optional<VmResult> r;
      {
        std::lock_guard lock(mutex);
        if (vm) r = vm->wait(milliseconds(0));
      }
      if (r) throw vm_stopped_error(*r, "sandbox unusable");
      throw GuestError("sandbox unusable: the VM stopped", tail());
    }
    case SandboxState::kShutDown: throw InvalidStateError("the sandbox was shut down");
    case SandboxState::kBooting: break;
  }
  throw InvalidStateError("the sandbox is still booting");
}

Sandbox::Sandbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sandbox::~Sandbox() {
  if (!impl_) return;
  // shutdown() already handed a reference over; otherwise the reaper gets the last one.
  if (impl_->begin_shutdown()) Impl::hand_to_reaper(std::move(impl_));
}

std::unique_ptr<Sandbox> Sandbox::create(const SandboxConfig& config, std::stop_token stop) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->boot(std::move(stop));  // on a throw, ~Impl tears down what was built
  return std::unique_ptr<Sandbox>(new Sandbox(std::move(impl)));
}

std::unique_ptr<Sandbox> Sandbox::restore(const std::string& dir,
                                          const SandboxRestoreConfig& config,
                                          std::stop_token stop) {
  auto impl = std::make_unique<Impl>();
  impl->restore(dir, config, std::move(stop));  // on a throw, ~Impl tears down what was built
  return std::unique_ptr<Sandbox>(new Sandbox(std::move(impl)));
}

void Sandbox::snapshot(const std::string& dir) { impl_->snapshot(dir); }
const ForkTimings& Sandbox::fork_timings() const noexcept { return impl_->fork_timings; }
VmMemoryUsage Sandbox::memory_usage() const {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->vm) throw InvalidStateError("the sandbox was shut down");
  return impl_->vm->memory_usage();
}
KvmCounters Sandbox::kvm_counters() const {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->vm) throw InvalidStateError("the sandbox was shut down");
  return impl_->vm->kvm_counters();
}
std::string Sandbox::progress_report() const {
  std::string vcpus, console;
  {
    std::lock_guard lock(impl_->mutex);  // the VM stays while it is sampled
    // Once shut down, the VM is the reaper's to tear down (its vCPUs stopping), not to sample.
    if (!impl_->vm || impl_->state.load() == SandboxState::kShutDown) {
      throw InvalidStateError("the sandbox was shut down");
    }
    vcpus = impl_->vm->progress_report();
    console = impl_->vm->console_tail();
  }
  // After the samples, so that they show the guest as the caller found it, and without the
  // lock: it may take seconds. A shutdown meanwhile only makes it fail.
  const std::string agent =
      "\nagent, asked on a second connection: " + probe_agent(impl_->agent_client_options());
  return guest_report(vcpus, agent, console);
}
VmHugePages Sandbox::huge_pages() const {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->vm) throw InvalidStateError("the sandbox was shut down");
  return impl_->vm->huge_pages();
}
void Sandbox::shutdown() {
  if (impl_->begin_shutdown()) Impl::hand_to_reaper(impl_);
}
SandboxState Sandbox::state() const { return impl_->state.load(); }
std::string Sandbox::console_tail() const { return printable_lines(impl_->tail()); }
std::chrono::nanoseconds Sandbox::boot_time() const noexcept { return impl_->boot_time; }
const std::string& Sandbox::vsock_socket_path() const noexcept { return impl_->socket_path; }
AgentClient& Sandbox::agent() { return impl_->ready_client(); }

HostDirCopyBack Sandbox::copy_back_host_dirs() {
  HostDirCopyBack report;
  for (const HostDir& dir : impl_->config.host_dirs) {
    if (dir.writable) host_dirs::copy_back(agent(), dir, report);
  }
  return report;
}

PingResult Sandbox::ping() { return agent().ping(); }
void FirstExecHook::run(const Vm* with) noexcept {
  std::lock_guard lock(mutex);
  if (with == nullptr) with = vm;
  if (!fn || with == nullptr) return;
  const auto hook = std::exchange(fn, nullptr);
  try {
    hook(*with);
  } catch (...) {
    // Learning is an optimisation: a pagemap that cannot be read leaves the image without.
  }
}

void Sandbox::Impl::first_exec_done() {
  std::lock_guard lock(mutex);  // vm stays while the hook reads it
  if (vm) after_first_exec->run(vm.get());
}

void Sandbox::Impl::arm_first_exec(ExecProcess& process) {
  {
    std::lock_guard lock(mutex);
    if (!vm) return;
    std::lock_guard hook_lock(after_first_exec->mutex);
    if (!after_first_exec->fn) return;  // run already, or nothing to learn
    after_first_exec->vm = vm.get();    // detached before the VM goes (finish_shutdown)
  }
  std::lock_guard lock(process.impl_->mutex);
  process.impl_->after_end = [hook = std::weak_ptr<FirstExecHook>(after_first_exec)] {
    if (const auto h = hook.lock()) h->run();
  };
}

ExecResult Sandbox::exec(const std::vector<std::string>& argv, const ExecOptions& options) {
  ExecResult r = agent().exec(argv, options);
  impl_->first_exec_done();
  return r;
}
ExecResult Sandbox::exec_shell(const std::string& command, const ExecOptions& options) {
  ExecResult r = agent().exec_shell(command, options);
  impl_->first_exec_done();
  return r;
}
ExecResult Sandbox::exec_stream(const std::vector<std::string>& argv, const ExecOptions& options,
                                const ExecCallbacks& callbacks) {
  ExecResult r = agent().exec_stream(argv, options, callbacks);
  impl_->first_exec_done();
  return r;
}
std::unique_ptr<ExecProcess> Sandbox::start(const std::vector<std::string>& argv,
                                            const ExecOptions& options,
                                            const ExecCallbacks& callbacks) {
  auto process = agent().start(argv, options, callbacks);
  impl_->arm_first_exec(*process);
  return process;
}
std::unique_ptr<ExecProcess> Sandbox::start_shell(const std::string& command,
                                                  const ExecOptions& options,
                                                  const ExecCallbacks& callbacks) {
  auto process = agent().start_shell(command, options, callbacks);
  impl_->arm_first_exec(*process);
  return process;
}
std::vector<ExecInfo> Sandbox::list_execs() { return agent().list_execs(); }
void Sandbox::write_file(const std::string& path, std::string_view data, uint32_t mode) {
  agent().write_file(path, data, mode);
}
uint64_t Sandbox::write_file(const std::string& path, std::istream& in, uint32_t mode) {
  return agent().write_file(path, in, mode);
}
uint64_t Sandbox::upload_file(const std::string& local_path, const std::string& path, uint32_t mode) {
  return agent().upload_file(local_path, path, mode);
}
std::string Sandbox::read_file(const std::string& path, uint64_t max_bytes) {
  return agent().read_file(path, max_bytes);
}
uint64_t Sandbox::read_file(const std::string& path,
                            const std::function<void(std::string_view)>& sink, uint64_t max_bytes) {
  return agent().read_file(path, sink, max_bytes);
}
uint64_t Sandbox::download_file(const std::string& path, const std::string& local_path,
                                uint64_t max_bytes) {
  return agent().download_file(path, local_path, max_bytes);
}
FileStat Sandbox::stat(const std::string& path) { return agent().stat(path); }
bool Sandbox::exists(const std::string& path) { return agent().exists(path); }
std::vector<DirEntry> Sandbox::list_dir(const std::string& path) { return agent().list_dir(path); }
void Sandbox::mkdir(const std::string& path, bool parents, uint32_t mode) {
  agent().mkdir(path, parents, mode);
}
void Sandbox::remove(const std::string& path, bool recursive) { agent().remove(path, recursive); }
void Sandbox::rename(const std::string& from, const std::string& to) { agent().rename(from, to); }
void Sandbox::set_env(const std::map<std::string, std::string>& env) { agent().set_env(env); }
void Sandbox::set_secret(const std::string& name, std::string_view value) {
  // Marked before the request: if the answer is lost, the guest may still have stored it.
  mark_secrets(true);
  agent().set_secret(name, value);
}

size_t Sandbox::clear_secrets() {
  const size_t cleared = agent().clear_secrets();
  mark_secrets(false);  // only once the agent says they are gone
  return cleared;
}

void Sandbox::mark_secrets(bool present) {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->vm) throw InvalidStateError("the sandbox was shut down");
  impl_->vm->set_secrets_in_memory(present);
}

}  // namespace forkvm
