// Sandbox::Impl: the state behind forkvm::Sandbox, shared by creating, restoring and forking
// (sandbox.cpp, sandbox_fork.cpp, template.cpp). Private to the library.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "forkvm/sandbox.hpp"
#include "forkvm/template.hpp"

namespace forkvm {

namespace net {
class EgressProxy;
class PortForward;
}  // namespace net

/// A private directory for a vsock socket: $runtime_dir (or $TMPDIR, or /tmp)/forkvm-XXXXXX,
/// holding its owner file (sandbox/stale_dirs.hpp). The first call for a directory in this
/// process first removes the dirs there whose owners died without removing them. Throws
/// ConfigError.
std::string make_temp_dir(const std::string& runtime_dir);
/// A vsock CID for a restored or forked VM, unique within this process and unlikely to repeat
/// across processes: a per-process counter from a pid-derived offset, kept in [3, 2^32 - 2).
uint64_t next_restore_cid();
/// The socket path inside a private temp dir, checked against the sun_path limit (ConfigError
/// naming `what`, the option that chose the directory).
std::string socket_in(const std::string& temp_dir, const char* what);
/// Throws ConfigError naming `option` (e.g. "ForkConfig::hostname") unless `hostname` is unset
/// or 1..64 characters of [A-Za-z0-9.-].
void check_hostname(const std::optional<std::string>& hostname, const char* option);
/// Vm::prefault_memory(touched, stage2) for a VM a Template or a restore prepared: an
/// optimisation only, so a failure (a host short of memory) is logged and gives an empty
/// VmPrefault; the guest then faults the pages in as it touches them.
VmPrefault prefault_or_log(Vm& vm, const TouchedMemory& touched, bool stage2);

/// A hook run once with a sandbox's VM after its first finished exec, shared with the processes
/// Sandbox::start hands out, which may outlive the sandbox. The sandbox attaches its VM while it
/// has one and detaches it (under `mutex`) before the VM goes, and the hook runs under `mutex`:
/// it never sees a VM being torn down.
struct FirstExecHook {
  std::mutex mutex;
  std::function<void(const Vm&)> fn;  // guarded by mutex; empty once run
  const Vm* vm = nullptr;             // guarded by mutex

  /// Sets fn (Template::fork, restore: before the sandbox is handed out).
  void set(std::function<void(const Vm&)> f) {
    std::lock_guard lock(mutex);
    fn = std::move(f);
  }
  /// Runs fn with `with` (or the attached VM when null), once; a failure of fn is ignored
  /// (learning is an optimisation).
  void run(const Vm* with = nullptr) noexcept;
};

struct Sandbox::Impl {
  using Clock = std::chrono::steady_clock;

  SandboxConfig config;
  std::string temp_dir;
  std::string socket_path;
  std::unique_ptr<Vm> vm;
  // The agent connection, made once the sandbox is up and kept for its life: snapshots and
  // forks leave it alone, so it is never replaced (connect_agent() refuses a second one, and a
  // failed attempt's client is gone with the attempt). Owned by `owned_client`; other threads
  // read it through this pointer.
  std::atomic<AgentClient*> client{nullptr};
  std::unique_ptr<AgentClient> owned_client;  // guarded by `mutex`
  std::atomic<SandboxState> state{SandboxState::kBooting};
  std::chrono::nanoseconds boot_time{0};
  ForkTimings fork_timings;
  // Called once with the VM after the first successful exec (Template::fork and restore set it
  // while the image has not yet learned which pages a VM touches first).
  std::shared_ptr<FirstExecHook> after_first_exec = std::make_shared<FirstExecHook>();
  std::mutex mutex;  // guards vm (reset at shutdown), final_tail, stop_watch
  std::string final_tail;
  bool stop_watch = false;
  std::thread watcher;
  std::mutex shutdown_mutex;  // one shutdown, snapshot or freeze at a time
  bool shutdown_finished = false;  // finish_shutdown() ran (guarded by shutdown_mutex)

  // Egress and ingress (sandbox_egress.cpp). config.egress is guarded by egress_mutex once
  // the sandbox runs (set_egress_policy and a fork may race); the proxy and the forwards go at
  // shutdown, before the temp dir.
  std::mutex egress_mutex;
  std::unique_ptr<net::EgressProxy> egress_proxy;
  std::vector<std::unique_ptr<net::PortForward>> forwards;  // guarded by egress_mutex

  Impl();
  ~Impl();

  void boot(std::stop_token stop);
  void restore(const std::string& dir, const SandboxRestoreConfig& rc, std::stop_token stop);
  void snapshot(const std::string& dir);
  // Freezes the VM (Vm::freeze) for make_template()/fork(). The agent connection and every
  // request in flight carry on. When the client is quiet (capture_options()) the children
  // take the agent connection over as it stands (attach_agent()); otherwise they connect anew.
  std::shared_ptr<const VmImage> freeze();
  // Adopts a launched child VM (Template::fork): connects, sets the identity, starts watching.
  void adopt(std::unique_ptr<Vm> child, std::string child_temp_dir, std::string child_socket,
             Clock::time_point deadline, const std::stop_token& stop);
  // How connect_agent() went: the last attempt's time until the agent accepted and greeted, and
  // the number of attempts.
  struct AgentConnected {
    std::chrono::nanoseconds accept{};
    std::chrono::nanoseconds identity{};  // the last attempt's identity request
    unsigned attempts = 0;
  };
  // What a capture of this sandbox (snapshot(), freeze()) does with its vsock connections:
  // the agent connection is carried, tagged with its protocol version, when the client is
  // quiet (AgentClient::hold_quiet); `quiet` then holds every new frame back until the caller
  // releases it, after the capture.
  CaptureOptions capture_options(AgentClient::Quiet& quiet);
  // The options of this sandbox's agent client.
  AgentClientOptions agent_client_options();
  // InvalidStateError when the sandbox already has its agent client (attach_agent() and
  // connect_agent() each make it once).
  void require_no_agent();
  // For a VM made from a frozen image: takes over the agent connection the image carried
  // (Vm::take_vsock_connection) and sends the identity as its first frame without waiting
  // (identity_answer). False when the image carried none (connect_agent() then). Once per
  // sandbox, like connect_agent().
  bool attach_agent();
  // Set by attach_agent() before the watcher starts, called by it first: waits for the
  // identity's answer and throws as AgentClient::set_identity() would.
  std::function<void()> identity_answer;
  // When attach_agent() sent that identity (its wall clock is the host's at this moment).
  Clock::time_point identity_sent_at{};
  // Connects (retrying until the agent answers), gives the guest its identity as the first
  // request on the connection, and makes it the client. Once per sandbox: InvalidStateError if
  // it already has one.
  AgentConnected connect_agent(Clock::time_point deadline, const std::stop_token& stop);
  // connect_agent() for a restored or forked VM, recording its split in fork_timings.
  void connect_agent_timed(Clock::time_point deadline, const std::stop_token& stop);
  // What connect_agent() gives the guest first: fresh entropy, the host's wall clock,
  // config.hostname and the NIC's MAC change.
  GuestIdentity identity() const;
  // Starts the egress proxy for config.egress on the socket the guest's proxied connections
  // arrive at (socket_path + "_3128"); before the VM runs, so the first connection finds it.
  void start_egress();
  // Puts the egress settings into the guest (after the agent is up): each secret binding's
  // placeholder in its environment and, when any secret is bound, the proxy's CA in its trust
  // (/run/forkvm/ca-bundle.pem and the variables that point TLS clients at it).
  void install_egress_in_guest();
  // The egress config a fork of this sandbox inherits.
  EgressConfig egress_config();
  void stop_network();
  void watch();
  // The whole teardown on this thread: a sandbox whose create, restore or fork failed, ~Impl.
  void shutdown();
  // Sandbox::shutdown() and ~Sandbox, on the caller's thread: ends the sandbox without waiting
  // for a thread (see Sandbox::shutdown()). False if it had already begun.
  bool begin_shutdown();
  // The rest, which waits for threads: joins the agent reader, the vCPU and device threads and
  // the watcher, stops the network, removes the socket, tears the VM and temp dir down.
  // Idempotent.
  void finish_shutdown();
  // Queues finish_shutdown() of `impl` on the process's reaper, which holds it until then.
  static void hand_to_reaper(std::shared_ptr<Impl> impl);
  // The guest console's tail as the VM keeps it (raw guest bytes): every message that shows it
  // goes through printable_lines() (GuestError does so itself).
  std::string tail();
  // The error for a VM that stopped by itself.
  GuestError vm_stopped_error(const VmResult& r, const std::string& context);
  // The client, if the sandbox is ready; otherwise the error its state calls for.
  AgentClient& ready_client();
  // Runs after_first_exec, once: after an exec that returned its result (exec, exec_shell,
  // exec_stream), or through the process's wait() that settles one (arm_first_exec).
  void first_exec_done();
  // Has `process` run after_first_exec when its wait() settles a result (Sandbox::start); the
  // hook is shared, so it may run after the sandbox is gone, and then does nothing.
  void arm_first_exec(ExecProcess& process);
};

}  // namespace forkvm
