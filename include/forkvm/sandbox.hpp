// forkvm::Sandbox: a microVM running the forkvm agent, driven through the agent protocol.
// This is the product's main interface:
//
//   forkvm::SandboxConfig config;
//   config.vm.kernel = "bzImage";
//   config.vm.initramfs = "initramfs.cpio.gz";
//   auto sandbox = forkvm::Sandbox::create(config);     // boots, waits for the agent
//   auto r = sandbox->exec({"uname", "-a"});             // r.stdout_data, r.exit_code, ...
//   sandbox->write_file("/tmp/x", "hello");
//   sandbox->shutdown();                                  // or let the destructor do it
//
// Thread-safe: many threads may exec and move files at once over the one agent connection.
// Free of KVM types. Errors: sandbox_errors.hpp, plus ConfigError/ImageError/KvmError from the
// VM and GuestError (with the console tail) when the guest fails or dies.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "forkvm/agent_client.hpp"
#include "forkvm/egress.hpp"
#include "forkvm/fork_config.hpp"
#include "forkvm/sandbox_errors.hpp"
#include "forkvm/vm.hpp"

namespace forkvm {

class Template;

/// A host directory given to the guest, as `mvmctl exec --add-dir`: packed into an ext4 image
/// (`mkfs.ext4 -d`, in the sandbox's temp dir), attached as a disk and mounted at `guest`
/// (nodev, nosuid) before create() returns. Symbolic links and special files are packed as
/// they are, never followed on the host. A writable one is a copy-on-write disk over the
/// packed image: the sandbox still forks (each child's writes are its own) and
/// Sandbox::copy_back_host_dirs() brings this sandbox's changes back to `host`, read through
/// the agent.
struct HostDir {
  /// An existing directory on the host (not a symbolic link).
  std::string host;
  /// Where the guest sees it: an absolute, normalized path (no "." or ".." parts), not "/"
  /// and not in /proc, /sys, /dev or /run/forkvm (the agent's). Created when missing.
  std::string guest;
  /// Whether the guest may write it (else it is mounted read-only).
  bool writable = false;
};

/// What Sandbox::copy_back_host_dirs() did.
struct HostDirCopyBack {
  uint64_t files_written = 0;     ///< new or changed regular files copied to the host
  uint64_t links_written = 0;     ///< symbolic links (re)created on the host, as links
  uint64_t dirs_created = 0;      ///< directories created on the host
  uint64_t removed = 0;           ///< host entries removed because the guest deleted them
  std::vector<std::string> refused;  ///< guest entries not copied, with the reason
};

/// What to boot and how long to wait for it.
struct SandboxConfig {
  /// The machine: kernel, initramfs, vcpus, memory, console sink, extra command line. The
  /// Sandbox adds the vsock device (its socket lives in a private temp dir) and
  /// `forkvm.after_ready=serve`; leave `vm.vsock` unset.
  VmConfig vm;
  /// The guest's root filesystem: an ext4 image (such as the built-in Debian one that
  /// tools/rootfs/build.sh makes) attached read-only as the first disk, /dev/vda with serial
  /// "rootfs", ahead of vm.disks. The agent mounts it under a writable overlay kept in guest
  /// RAM and runs every exec and file operation there, so the image is never written and a
  /// fork shares it without copying. Empty: the initramfs is the root (the minimal image,
  /// fastest to boot).
  std::string root_filesystem;
  /// With root_filesystem: the id of one of vm.disks (read-write or copy-on-write, holding an
  /// ext4 file system, e.g. made with mkfs.ext4) that keeps the overlay's writable layer
  /// instead of guest RAM, so what the guest writes to "/" outlives the VM (persistent) or
  /// forks with it (copy-on-write). Empty: the layer is in RAM.
  std::string root_upper_disk;
  /// From start to "the agent answers its first request": the ready signal plus the first connection.
  std::chrono::milliseconds boot_timeout{120000};
  /// Deadline of each non-exec request (see AgentClientOptions::request_timeout).
  std::chrono::milliseconds request_timeout{30000};
  /// Where the private temp dir (holding the vsock socket) is made; empty: $TMPDIR or /tmp.
  /// Unix socket paths are limited to 107 bytes, so keep it short.
  std::string runtime_dir;
  /// The guest's hostname (1..64 of [A-Za-z0-9.-]); nullopt keeps the image's.
  std::optional<std::string> hostname;
  /// Persistent environment set once the agent is up (as set_env()).
  std::map<std::string, std::string> env;
  /// Host directories to attach and mount (HostDir), after the root filesystem and vm.disks.
  std::vector<HostDir> host_dirs;
  /// Where the guest may connect to through the egress proxy, with which secrets, and who
  /// hears of each request (egress.hpp). The default denies everything, with a 403 naming the
  /// reason. Each secret's placeholder is set in the guest environment under its name.
  EgressConfig egress;
};

/// A guest TCP port reachable from the host (Sandbox::expose_port()).
struct ExposedPort {
  std::string host;        ///< "127.0.0.1" ("" for a Unix socket)
  uint16_t port = 0;       ///< the host port listening (0 for a Unix socket)
  std::string unix_path;   ///< the Unix socket listening (expose_port_unix), else ""
  uint16_t guest_port = 0; ///< the guest's port on its 127.0.0.1
};

/// How Sandbox::restore() brings a snapshot (Sandbox::snapshot()) back as a new sandbox. The
/// machine itself (vCPUs, memory, the guest's processes and files) comes from the snapshot.
struct SandboxRestoreConfig {
  /// Where the private temp dir (holding the new VM's vsock socket) is made; empty: $TMPDIR or
  /// /tmp. Keep it short (Unix socket paths are limited to 107 bytes).
  std::string runtime_dir;
  /// From the start of the restore to "the agent answers its first request".
  std::chrono::milliseconds boot_timeout{120000};
  /// Deadline of each non-exec request (see AgentClientOptions::request_timeout).
  std::chrono::milliseconds request_timeout{30000};
  /// The restored guest's hostname (1..64 of [A-Za-z0-9.-]); nullopt keeps the snapshot's.
  std::optional<std::string> hostname;
  /// Re-hash the memory file against its digest first (RestoreOptions::verify_memory). Turn
  /// off only for a snapshot already verified in this process (e.g. after the first child).
  bool verify_memory = true;
  /// Receives the restored guest's serial console output (as VmConfig::console); optional.
  std::function<void(std::string_view)> console;
  /// The restored sandbox's egress policy (a snapshot holds none: the default denies all).
  EgressConfig egress;
  /// The NIC of the restored VM: required when the snapshot's machine had a network device
  /// (RestoreOptions::net). The guest's interface keeps its addresses and routes and moves to
  /// this NIC's MAC (a fresh one unless set).
  std::optional<NetConfig> net;
  /// Once a VM of the snapshot's image has told which guest pages its first exec touched
  /// (VmImage::first_touches(): an earlier restore of the directory while its image stayed
  /// open, or a Template of it), the restored VM takes them before its vCPUs run, as
  /// TemplateOptions::prefault (and maps them into NPT/EPT where KVM can:
  /// ForkTimings::prefaulted_bytes, premapped_bytes). While the image is still learning
  /// them (from its first three VMs), this sandbox's first exec teaches them too.
  bool prefault = true;
};

/// Where a sandbox is in its life.
enum class SandboxState {
  kBooting,   ///< inside create(): the VM is starting
  kReady,     ///< the agent answered; requests are accepted
  kFailed,    ///< the VM stopped by itself (panic, reset, power-off) after it was ready
  kShutDown,  ///< shutdown() ran (or create() failed and cleaned up)
};

/// A short name for a state ("booting", "ready", "failed", "shut-down").
std::string_view to_string(SandboxState state) noexcept;

/// A booted microVM with a connected agent. See the file comment.
class Sandbox {
 public:
  /// Boots the VM and waits until the agent answers, within config.boot_timeout.
  /// Throws ConfigError/ImageError/KvmError (nothing started), GuestError (the guest failed
  /// before ready; with the console tail), TimeoutError (with the console tail),
  /// AgentUnreachableError, or CancelledError when `stop` was requested. On any failure
  /// everything created so far (VM, socket, temp dir) is torn down before it throws.
  static std::unique_ptr<Sandbox> create(const SandboxConfig& config, std::stop_token stop = {});
  /// Builds a new sandbox from a snapshot written by snapshot(): the VM is restored
  /// (Vm::restore) with its own vsock CID (unique within this process) and a socket in a new
  /// private temp dir, the agent is connected (retried until it answers, within
  /// config.boot_timeout), and the child is made its own machine by the first request on that
  /// connection (AgentClient::set_identity): fresh host entropy (the guest reseeds its CRNG at
  /// once), the host's wall clock, and config.hostname when set. The guest's files and processes are the snapshot's; nothing the
  /// child writes reaches the snapshot or any other sandbox. Throws SnapshotError (missing,
  /// corrupt or unsuitable snapshot), ConfigError, KvmError, GuestError, TimeoutError,
  /// AgentUnreachableError, or CancelledError when `stop` was requested; on any failure
  /// everything created so far is torn down before it throws (as create()).
  static std::unique_ptr<Sandbox> restore(const std::string& dir,
                                          const SandboxRestoreConfig& config,
                                          std::stop_token stop = {});
  /// Shuts down (see shutdown()).
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  /// Ends the sandbox without waiting for its threads. When it returns: pending requests have
  /// failed with InvalidStateError, later requests throw it, no callback (exec streams, the
  /// console) runs any more (one that was running has returned, unless shutdown() is called
  /// from inside it), and the vCPUs have been told to stop. Everything that waits is handed
  /// to the process's reaper thread: joining the vCPU, device and agent-reader threads,
  /// closing the KVM VM and unmapping its memory (tens of ms in a nested guest), removing the
  /// vsock socket and the temp dir. At most 64 teardowns wait there; a shutdown beyond that
  /// waits for room, and the queue is drained at process exit. wait_for_teardowns() waits for
  /// them. (A sandbox whose create, restore or fork failed is torn down completely before the
  /// error is thrown.) Idempotent.
  void shutdown();
  /// Waits until the teardown of every sandbox shut down so far (by any thread) has finished:
  /// its VM closed, its memory unmapped, its temp dir removed.
  static void wait_for_teardowns();
  /// Writes a snapshot of this sandbox to the new directory `dir` (Vm::snapshot: `dir` must
  /// not exist). The sandbox keeps running, undisturbed: the VM pauses for the capture and its
  /// agent connection stays, so requests, execs and streams in flight (from other threads)
  /// wait out the pause and finish. A sandbox restored from the snapshot gets an RST for each
  /// connection instead (its guest drops them) and connects anew. One snapshot at a time;
  /// shutdown() waits for it. An existing `dir` is refused (SnapshotError) before the VM is
  /// touched. Throws InvalidStateError when the sandbox is not ready, SnapshotError/ConfigError
  /// when the snapshot cannot be written, GuestError when the VM stops.
  void snapshot(const std::string& dir);
  /// Forks this running sandbox: freezes it (Vm::freeze: paused, captured, its memory made
  /// the child's copy-on-write base without copying RAM) and returns a running child made from
  /// that image (Template::fork). Parent and child continue from identical state; nothing
  /// either writes afterwards is visible to the other. Forks of forks work to any depth: each
  /// level copies only the pages written since the previous one. Disks fork with it: the root
  /// filesystem and read-only disks are shared, and a copy-on-write disk seals its overlay as a
  /// layer both go on from, so neither sees the other's later writes and nothing is copied; a
  /// persistent (read-write) disk refuses the fork with SnapshotError before anything is
  /// touched. As with snapshot(), the parent is undisturbed: its agent connection and every
  /// request in flight carry on after the pause. With no request in flight the child takes
  /// over a copy of that connection (ForkTimings::agent_carried); otherwise its guest gets an
  /// RST for each connection it inherited and it connects anew. The child takes ahead the
  /// pages that the first execs of this sandbox's earlier children (or of the image it was
  /// restored or forked from) touched, as a Template's children do (TemplateOptions::prefault,
  /// Vm::freeze): ForkTimings::prefaulted_bytes. Throws InvalidStateError unless
  /// ready, plus what Template::fork() throws.
  std::unique_ptr<Sandbox> fork(const ForkConfig& config = {}, std::stop_token stop = {});
  /// Freezes this running sandbox once into a Template that forks many children from the same
  /// point (the sandbox is undisturbed, as for fork()). `options.verify_memory` is ignored.
  /// Run the commands children will start with once here first (a warm-up, as `forkvm snapshot
  /// create --warm-up` does): their files are then in the guest page cache every child shares,
  /// instead of being read from disk into each child's own memory on its first exec.
  /// Throws InvalidStateError unless ready.
  std::shared_ptr<Template> make_template(const TemplateOptions& options = {});
  /// Where the time went in the fork or restore that made this sandbox (all zero for a booted
  /// one; a restore has no freeze, is never template-pooled and counts from the restore() call).
  const ForkTimings& fork_timings() const noexcept;
  /// How much host memory the guest RAM of this sandbox uses right now (Vm::memory_usage()).
  VmMemoryUsage memory_usage() const;
  /// KVM's event counters for this sandbox's vCPUs right now (Vm::kvm_counters()): compare two
  /// readings to see what a request cost in exits and page faults.
  KvmCounters kvm_counters() const;
  /// The huge pages behind this sandbox's guest RAM right now (Vm::huge_pages()).
  VmHugePages huge_pages() const;
  /// The current state.
  SandboxState state() const;
  /// The last part of the guest console (for diagnostics), made printable: terminal control
  /// bytes escaped, line breaks kept (as GuestError::console_tail()).
  std::string console_tail() const;
  /// Where the guest's vCPUs are and whether they move (Vm::progress_report(): registers and
  /// exit counters sampled twice, 100 ms apart); whether the agent answers a ping on a second
  /// connection of its own ("agent, asked on a second connection: answered ..." or "did not
  /// answer ..."); then the console's tail under a "--- guest console (tail) ---" line. For
  /// telling, when a request goes unanswered, a guest that is stuck from one that is slow, and
  /// a stuck agent from a request stuck in its connection or command. Parks the vCPUs for each
  /// sample; takes ~100 ms with a live agent, up to ~4 s more without one. A diagnostic, not
  /// for a request path. Throws InvalidStateError after shutdown().
  std::string progress_report() const;
  /// The VM's Firecracker-style vsock socket: connect, write "CONNECT <port>\n", read
  /// "OK <n>\n", and the stream is that guest port (e.g. 5555 for the metadata protocol).
  /// Valid until shutdown(), which removes it.
  const std::string& vsock_socket_path() const noexcept;
  /// From start() to the agent answering its first ping.
  std::chrono::nanoseconds boot_time() const noexcept;
  /// The agent connection, for anything not wrapped here. Throws InvalidStateError unless
  /// ready.
  AgentClient& agent();
  /// Copies what the guest changed in each writable host directory (SandboxConfig::host_dirs)
  /// back to the host, as the guest sees it now: new and changed regular files (written to a
  /// temporary name, then renamed), symbolic links as links (their targets are never
  /// followed), new directories, and removals of what the guest deleted. Host paths are
  /// resolved beneath the directory without following any symbolic link; guest names with a
  /// '/', "." or ".." and special files are refused and listed. Unchanged files (same size
  /// and modification time) are not rewritten; the file system's own top-level lost+found is
  /// left out. Throws what the agent requests throw, and
  /// Error for a host write that fails.
  HostDirCopyBack copy_back_host_dirs();
  /// Replaces the egress policy of this running sandbox (requests that arrive afterwards are
  /// decided by it; connections already open keep theirs) and sets the placeholders of its
  /// secrets in the guest environment. Later forks inherit it. Throws ConfigError for an
  /// invalid policy (nothing changes), InvalidStateError unless ready.
  void set_egress_policy(const EgressPolicy& policy);
  /// Makes the guest's TCP port `guest_port` (on the guest's 127.0.0.1) reachable on the
  /// host's 127.0.0.1:`host_port` (0: a free port, see the result). Each host connection is
  /// carried over vsock to the agent, which connects to the guest port; a guest port nobody
  /// listens on closes the host connection. Closing either side closes the other. Lasts
  /// until shutdown(); forks do not inherit it. Throws ConfigError (port 0, host port in use),
  /// InvalidStateError unless ready.
  ExposedPort expose_port(uint16_t guest_port, uint16_t host_port = 0);
  /// The same on the Unix socket `path` (mode 0600 from creation, so only this user can
  /// connect; an existing file there is a ConfigError, never replaced; removed at shutdown()).
  /// Throws ConfigError (port 0, a path over 107 bytes or that cannot be bound),
  /// InvalidStateError unless ready.
  ExposedPort expose_port_unix(uint16_t guest_port, const std::string& path);
  /// Makes an HTTP(S) request from the host on this sandbox's behalf, under its egress policy,
  /// limits and secret bindings, audited as its own (as mimobox's http_request). Throws
  /// EgressDeniedError, EgressUnresolvableError (the host name did not resolve on the host),
  /// EgressError, TimeoutError, ConfigError (a malformed request), or InvalidStateError unless
  /// ready.
  HttpResponse http_request(const HttpRequest& request);

  // The sandbox's own face of the agent client: the calls below forward to agent() one to one,
  // on purpose. A sandbox is what callers hold (as E2B's and microsandbox's `sandbox.exec(...)`),
  // and each call first checks the sandbox's state, so a request to a sandbox that was shut
  // down, is being forked or whose VM has stopped fails with InvalidStateError or GuestError
  // (with the console tail) rather than with an AgentClient error about a closed socket.
  // AgentClient stays a type of its own: it also speaks to an agent on any socket (the
  // host-side tests run it against the agent server on a Unix socket). Keep the two lists in
  // step; a new agent operation goes into AgentClient first.

  /// See AgentClient::ping().
  PingResult ping();
  /// Runs argv and collects the output (AgentClient::exec()).
  ExecResult exec(const std::vector<std::string>& argv, const ExecOptions& options = {});
  /// Runs a /bin/sh -c command line.
  ExecResult exec_shell(const std::string& command, const ExecOptions& options = {});
  /// Runs argv with output delivered to callbacks as it arrives.
  ExecResult exec_stream(const std::vector<std::string>& argv, const ExecOptions& options,
                         const ExecCallbacks& callbacks);
  /// Starts argv and returns a handle (stdin, signal, cancel, wait).
  std::unique_ptr<ExecProcess> start(const std::vector<std::string>& argv,
                                     const ExecOptions& options = {},
                                     const ExecCallbacks& callbacks = {});
  /// start() for a /bin/sh -c command line.
  std::unique_ptr<ExecProcess> start_shell(const std::string& command,
                                           const ExecOptions& options = {},
                                           const ExecCallbacks& callbacks = {});
  /// The running execs.
  std::vector<ExecInfo> list_execs();

  /// Writes bytes to a guest file atomically.
  void write_file(const std::string& path, std::string_view data, uint32_t mode = 0644);
  /// Streams an istream to a guest file; returns the byte count.
  uint64_t write_file(const std::string& path, std::istream& in, uint32_t mode = 0644);
  /// Streams a local file to a guest file; returns the byte count.
  uint64_t upload_file(const std::string& local_path, const std::string& path,
                       uint32_t mode = 0644);
  /// Reads a whole guest file (at most max_bytes, counted on the host; past it
  /// OperationError(kTooLarge)).
  std::string read_file(const std::string& path, uint64_t max_bytes = kDefaultReadFileMaxBytes);
  /// Streams a guest file to a callback (at most max_bytes); returns the byte count.
  uint64_t read_file(const std::string& path, const std::function<void(std::string_view)>& sink,
                     uint64_t max_bytes = kDefaultStreamMaxBytes);
  /// Streams a guest file to a local file (at most max_bytes; atomically, nothing left behind
  /// on failure: AgentClient::download_file()); returns the byte count.
  uint64_t download_file(const std::string& path, const std::string& local_path,
                         uint64_t max_bytes = kDefaultStreamMaxBytes);
  /// lstat of a guest path.
  FileStat stat(const std::string& path);
  /// Whether a guest path exists.
  bool exists(const std::string& path);
  /// A guest directory's entries.
  std::vector<DirEntry> list_dir(const std::string& path);
  /// Creates a directory (with parents: like mkdir -p).
  void mkdir(const std::string& path, bool parents = false, uint32_t mode = 0755);
  /// Removes a path (recursive: a whole tree).
  void remove(const std::string& path, bool recursive = false);
  /// Renames a guest path.
  void rename(const std::string& from, const std::string& to);
  /// Sets persistent env entries for later execs (an empty value deletes).
  void set_env(const std::map<std::string, std::string>& env);
  /// Stores a secret under /run/forkvm/secrets/<name> (mode 0600, in guest RAM: a tmpfs).
  ///
  /// A secret lives in guest memory, so one set before snapshot(), fork() or make_template()
  /// is in the snapshot's memory file and in every child made from it. Clear it first
  /// (clear_secrets()) or give it to each child after the fork. Such an image is recorded as
  /// holding secrets (VmImage::has_secrets()), and a Template refuses it unless
  /// TemplateOptions::allow_secrets (ForkConfig::allow_secrets for fork()) is set.
  void set_secret(const std::string& name, std::string_view value);
  /// Removes every secret in the guest: the agent overwrites each file with zeros in place
  /// before unlinking it (the guest kernel runs with init_on_free=1, so pages it frees are
  /// zeroed too), and snapshots and forks taken afterwards are no longer marked as holding
  /// secrets. What a guest program copied elsewhere is beyond its reach. Returns how many
  /// secrets were removed. Throws as the other agent requests.
  size_t clear_secrets();

  struct Impl;

 private:
  /// Vm::set_secrets_in_memory on this sandbox's VM.
  void mark_secrets(bool present);
  friend class Template;  // makes its children from a launched VM
  explicit Sandbox(std::unique_ptr<Impl> impl);
  // Shared with the reaper, which finishes a shutdown after the caller has moved on (and may
  // outlive this object while it does).
  std::shared_ptr<Impl> impl_;
};

}  // namespace forkvm
