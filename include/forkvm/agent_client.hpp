// forkvm::AgentClient: the host side of the agent protocol (contract/protocol/MESSAGES.md)
// over one stream socket. Usable on its own (against any Unix socket that speaks the protocol,
// directly or through a Firecracker-style vsock socket) and used by forkvm::Sandbox.
//
// One connection carries many concurrent requests, told apart by id; a reader thread routes
// the agent's frames to them. Every method is thread-safe. Every wait is bounded (a deadline)
// or cancellable, so a dead or hung agent surfaces as TimeoutError / AgentUnreachableError,
// never as a hang. Errors are the types of sandbox_errors.hpp.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "forkvm/sandbox_errors.hpp"

namespace forkvm {

/// Default host-side limit of AgentClient::read_file() into a string (and Sandbox's): the same
/// 64 MiB as ExecOptions::max_output_bytes, so by default nothing the guest hands back is held
/// in the host's memory past 64 MiB per request.
inline constexpr uint64_t kDefaultReadFileMaxBytes = 64ull << 20;
/// Default host-side limit of a guest file streamed to a sink or downloaded into a local file
/// (read_file() with a sink, download_file(), and Sandbox's): 4 GiB, so a guest that streams
/// without end cannot fill the host's disk or keep a transfer going forever.
inline constexpr uint64_t kDefaultStreamMaxBytes = 4ull << 30;

/// Options of one command run in the guest.
struct ExecOptions {
  /// Added to the environment (over the persistent env set with set_env, over the agent's base
  /// env). Keys must match [A-Za-z_][A-Za-z0-9_]*, values contain no NUL/newline.
  std::map<std::string, std::string> env;
  /// Working directory (absolute); empty means "/".
  std::string cwd;
  /// The guest kills the command's process group after this long (the result then has
  /// timed_out set and signal 9). nullopt: no limit (the wait is still cancellable).
  std::optional<std::chrono::milliseconds> timeout;
  /// Per-stream cap on output (collected or handed to a callback); more is read and dropped in
  /// the guest and the stream is marked truncated. The host enforces the same cap on what it
  /// receives, since an agent may lie: bytes past it on a stream are dropped on the host too
  /// (never collected, never passed to a callback) and the stream is marked truncated, so one
  /// exec never makes the host hold more than max_output_bytes per stream.
  uint64_t max_output_bytes = 64ull << 20;
  /// Bytes written to the command's stdin, which is then closed. Without it stdin is
  /// /dev/null (or, with interactive_stdin, whatever ExecProcess::write_stdin sends).
  std::optional<std::string> stdin_data;
  /// Only for start(): stdin stays open for ExecProcess::write_stdin() until close_stdin().
  bool interactive_stdin = false;
};

/// How a command ended.
struct ExecResult {
  /// Captured stdout (empty for a stream delivered to a callback).
  std::string stdout_data;
  /// Captured stderr (empty for a stream delivered to a callback).
  std::string stderr_data;
  /// The exit status when the command exited; nullopt when a signal killed it.
  std::optional<int> exit_code;
  /// The signal that killed it, if one did.
  std::optional<int> signal;
  /// ExecOptions::timeout passed and the guest killed the command.
  bool timed_out = false;
  /// The command was cancelled (ExecProcess::cancel()).
  bool cancelled = false;
  /// Run time measured in the guest.
  std::chrono::milliseconds duration{0};
  /// Host clock, from sending the request to the agent's "started" (the guest has executed
  /// the program): what getting the command going cost, apart from its run.
  std::chrono::nanoseconds until_started{0};
  /// Output past max_output_bytes was dropped on that stream (by the guest, or by the host when
  /// the agent sent more than the cap).
  bool stdout_truncated = false;
  /// Output past max_output_bytes was dropped on that stream (by the guest or by the host).
  bool stderr_truncated = false;
  /// The command's pid in the guest.
  int pid = 0;
  /// True when the command exited with status 0.
  bool ok() const noexcept { return exit_code.has_value() && *exit_code == 0; }
  /// How it ended, in words for a message: "exit status 3", "killed by signal 9", "timed out
  /// (killed by signal 9)", "cancelled (killed by signal 9)".
  std::string outcome() const;
};

/// Receivers of a command's output as it arrives. They run on the client's reader thread, in
/// arrival order per stream: keep them short and never call back into the client (or the
/// Sandbox) from one; that would wait on the very thread that delivers the answer. An
/// exception from a callback cancels the command and is rethrown by wait().
struct ExecCallbacks {
  /// stdout chunks; when empty, stdout is collected into ExecResult::stdout_data.
  std::function<void(std::string_view)> on_stdout;
  /// stderr chunks; when empty, stderr is collected into ExecResult::stderr_data.
  std::function<void(std::string_view)> on_stderr;
};

/// A running command of the guest started with AgentClient::start() (or Sandbox::start()).
/// Thread-safe. Destroying it while the command runs cancels the command (best effort) and
/// does not wait for it.
class ExecProcess {
 public:
  ~ExecProcess();
  ExecProcess(const ExecProcess&) = delete;
  ExecProcess& operator=(const ExecProcess&) = delete;

  /// The request id of this exec (the `target` for signal/cancel, the id in list_execs()).
  uint64_t id() const noexcept;
  /// The pid in the guest.
  int pid() const noexcept;
  /// Sends bytes to the command's stdin (in kChunkBytes frames). Needs
  /// ExecOptions::interactive_stdin. Throws InvalidStateError once stdin is closed or the
  /// command has ended.
  void write_stdin(std::string_view bytes);
  /// Closes the command's stdin (EOF). Idempotent.
  void close_stdin();
  /// Sends `signo` to the command's process group. Throws OperationError(kNotRunning) if it
  /// already ended.
  void signal(int signo);
  /// Kills the command (SIGKILL to its group); wait() then returns a result with cancelled
  /// set. No-op if it already ended.
  void cancel();
  /// True once the command has ended (or the request failed).
  bool done() const;
  /// Waits for the end. Without `timeout`, waits as long as the command may run: until
  /// ExecOptions::timeout plus a grace period when one was set, else until it ends or the
  /// connection fails. Throws TimeoutError (the command keeps running), OperationError,
  /// AgentUnreachableError, GuestError (the VM died), or what a callback threw. The captured
  /// output is handed over by the first wait() that returns; later calls return the same
  /// status with empty stdout_data/stderr_data.
  ExecResult wait(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  /// Like wait() but returns nullopt instead of throwing TimeoutError when `timeout` passes.
  std::optional<ExecResult> wait_for(std::chrono::milliseconds timeout);

  struct Impl;
  /// Internal: built by AgentClient.
  explicit ExecProcess(std::shared_ptr<Impl> impl);

 private:
  friend class Sandbox;  // Sandbox::start arms the hook that runs when the first result settles
  std::shared_ptr<Impl> impl_;
};

/// One exec in flight, as list_execs() reports it.
struct ExecInfo {
  uint64_t id = 0;                ///< the exec's request id
  int pid = 0;                    ///< pid in the guest
  std::vector<std::string> argv;  ///< its argv (a shell exec shows /bin/sh -c ...)
  std::chrono::milliseconds running{0};  ///< how long it has run
};

/// What a path is (lstat: symlinks are not followed).
enum class FileKind { kFile, kDirectory, kSymlink, kOther };

/// stat() of a guest path.
struct FileStat {
  FileKind kind = FileKind::kOther;
  uint64_t size = 0;
  uint32_t mode = 0;  ///< permission bits (the low 12 bits)
  std::chrono::milliseconds mtime{0};  ///< since the Unix epoch
};

/// One entry of list_dir().
struct DirEntry {
  std::string name;
  FileStat stat;
};

/// The agent's answer to ping().
struct PingResult {
  uint32_t version = 0;                  ///< protocol version the agent speaks
  std::chrono::milliseconds uptime{0};   ///< the agent's uptime
  std::chrono::microseconds round_trip{0};  ///< measured on the host
};

/// What makes a forked or restored guest its own machine (AgentClient::set_identity()).
struct GuestIdentity {
  /// Fresh entropy for the guest kernel's RNG, 32..4096 bytes (the guest mixes it in and
  /// reseeds its CRNG at once). Empty: 64 bytes from the host's getrandom().
  std::string entropy;
  /// The guest wall clock to set; nullopt leaves it. Sandbox sets the host's current time.
  std::optional<std::chrono::system_clock::time_point> wall_clock;
  /// A hostname to set (1..64 of [A-Za-z0-9.-]); nullopt leaves it.
  std::optional<std::string> hostname;
  /// A fork's fresh NIC address: the guest interface whose MAC is `first` gets `second` (a
  /// unicast address); nullopt leaves the NIC alone.
  std::optional<std::pair<std::array<uint8_t, 6>, std::array<uint8_t, 6>>> mac;
};

/// Where and how to connect.
struct AgentClientOptions {
  /// The Unix socket to connect to.
  std::string socket_path;
  /// When set, the socket is a Firecracker-style vsock socket: the client writes
  /// "CONNECT <port>\n" and expects "OK <n>\n" before speaking frames.
  std::optional<uint32_t> vsock_port;
  /// Deadline for connect + CONNECT handshake + hello exchange.
  std::chrono::milliseconds connect_timeout{5000};
  /// Deadline for each non-exec request (and for an exec's "started"); also bounds how long a
  /// write may stall because the agent stopped reading.
  std::chrono::milliseconds request_timeout{30000};
  /// How long past ExecOptions::timeout the host waits for the exit frame.
  std::chrono::milliseconds exec_grace{10000};
  /// Optional: builds the error that pending requests fail with when the connection is lost
  /// (called on the reader thread with a description). The Sandbox uses it to report a VM that
  /// died, with its console tail. Null, or returning null: AgentUnreachableError.
  std::function<std::exception_ptr(const std::string& reason)> connection_lost_error;
};

/// A connection to the agent. See the file comment.
class AgentClient {
 public:
  /// Connects, performs the CONNECT handshake if asked, and exchanges hellos, all within
  /// connect_timeout. Throws AgentUnreachableError (refused, closed, handshake refused),
  /// TimeoutError, AgentProtocolError (bad hello, version mismatch).
  static std::unique_ptr<AgentClient> connect(const AgentClientOptions& options);
  /// A client on a connection that is already past the CONNECT handshake and the hello
  /// exchange, speaking protocol `version`: the agent connection a VM made from a capture took
  /// over (Vm::take_vsock_connection; the capture's client was quiet, see hold_quiet()). Takes
  /// ownership of `fd` (a connected stream socket; closed on a throw too). Only
  /// AgentClientOptions' timeouts and connection_lost_error are used. Throws
  /// AgentProtocolError for a version this client does not speak, AgentUnreachableError for a
  /// descriptor that is not a socket.
  static std::unique_ptr<AgentClient> attach(int fd, uint32_t version,
                                             const AgentClientOptions& options);
  /// attach(), with `identity` as the connection's first frame, written before the client's
  /// reader thread starts: what a forked or restored child does first, so that the guest is
  /// handling it while the host still sets up the rest of the child (the client's thread, the
  /// egress proxy). `answer` is set to the call that waits for its answer (send_identity()).
  /// Throws as attach() does, and AgentUnreachableError when the frame cannot be written.
  static std::unique_ptr<AgentClient> attach_with_identity(int fd, uint32_t version,
                                                           const AgentClientOptions& options,
                                                           const GuestIdentity& identity,
                                                           std::function<void()>& answer);
  /// Closes the connection (see close()).
  ~AgentClient();
  AgentClient(const AgentClient&) = delete;
  AgentClient& operator=(const AgentClient&) = delete;

  /// Closes the connection; pending requests fail with `reason` (default: InvalidStateError
  /// "client closed") and later calls throw it. The agent kills the execs of this connection.
  /// Idempotent.
  void close(std::exception_ptr reason = nullptr);
  /// close() without joining the reader thread: pending requests fail with `reason` at once
  /// and no frame callback runs once this returns (one that is running is waited for, unless
  /// this is called from inside it). A later close() or the destructor joins the thread.
  void close_nowait(std::exception_ptr reason = nullptr);
  /// False once the connection is closed or lost.
  bool connected() const;
  /// The negotiated protocol version.
  uint32_t protocol_version() const noexcept;

  /// What hold_quiet() found.
  struct Quiet {
    std::unique_lock<std::mutex> hold;  ///< new frames wait while this is held
    bool quiet = false;                 ///< see hold_quiet()
  };
  /// Holds every new frame back (senders wait) until the returned lock is released, and says
  /// whether the connection is quiet now: no request pending, none given up on whose answer
  /// may still come, nothing half-written either way. A VM captured under such a hold may
  /// carry the connection into its copies (CaptureOptions::carry_vsock), whose clients
  /// (attach()) then start at a frame boundary. Keep the hold short: requests wait for it.
  [[nodiscard]] Quiet hold_quiet();

  /// Round trip to the agent.
  PingResult ping(std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  /// Runs argv (argv[0] is searched in PATH) and collects its output.
  ExecResult exec(const std::vector<std::string>& argv, const ExecOptions& options = {});
  /// Runs `command` with /bin/sh -c.
  ExecResult exec_shell(const std::string& command, const ExecOptions& options = {});
  /// Runs argv, delivering output to `callbacks` as it arrives; returns once it ended.
  ExecResult exec_stream(const std::vector<std::string>& argv, const ExecOptions& options,
                         const ExecCallbacks& callbacks);
  /// Starts argv and returns once the guest has executed it (the "started" frame). Throws
  /// OperationError (e.g. kNotFound for a missing program) if it could not start.
  std::unique_ptr<ExecProcess> start(const std::vector<std::string>& argv,
                                     const ExecOptions& options = {},
                                     const ExecCallbacks& callbacks = {});
  /// start() for a /bin/sh -c command line.
  std::unique_ptr<ExecProcess> start_shell(const std::string& command,
                                           const ExecOptions& options = {},
                                           const ExecCallbacks& callbacks = {});
  /// The execs of this connection that are still running.
  std::vector<ExecInfo> list_execs();

  /// Writes `data` to `path` atomically (temp file + rename in the guest) with `mode`.
  void write_file(const std::string& path, std::string_view data, uint32_t mode = 0644);
  /// Streams `in` to `path` in chunks (never holding the whole file); returns the byte count.
  uint64_t write_file(const std::string& path, std::istream& in, uint32_t mode = 0644);
  /// Streams the local file `local_path` to `path`; returns the byte count.
  uint64_t upload_file(const std::string& local_path, const std::string& path,
                       uint32_t mode = 0644);
  /// Reads a whole guest file. Once more than `max_bytes` arrive (counted on the host, whatever
  /// the agent claims), the read is cancelled and OperationError(kTooLarge, from_guest()
  /// false) is thrown; nothing past the limit is held.
  std::string read_file(const std::string& path, uint64_t max_bytes = kDefaultReadFileMaxBytes);
  /// Streams a guest file to `sink` chunk by chunk (on the reader thread; see ExecCallbacks
  /// for the rules); returns the byte count. An exception from `sink` cancels the read and is
  /// rethrown. The sink gets at most `max_bytes` in all: a file that is longer fails with
  /// OperationError(kTooLarge, from_guest() false) before the chunk that would cross it.
  uint64_t read_file(const std::string& path, const std::function<void(std::string_view)>& sink,
                     uint64_t max_bytes = kDefaultStreamMaxBytes);
  /// Streams a guest file into the local file `local_path`, atomically: the bytes go to a new
  /// temporary file in the same directory (".<name>.forkvm-XXXXXX", mode 0666 less the umask),
  /// renamed over `local_path` once the whole file arrived. A failure, including a file longer
  /// than `max_bytes` (OperationError(kTooLarge, from_guest() false)), removes the temporary
  /// file and leaves `local_path` as it was.
  uint64_t download_file(const std::string& path, const std::string& local_path,
                         uint64_t max_bytes = kDefaultStreamMaxBytes);
  /// lstat of a guest path.
  FileStat stat(const std::string& path);
  /// Whether a guest path exists.
  bool exists(const std::string& path);
  /// The entries of a guest directory, sorted by name.
  std::vector<DirEntry> list_dir(const std::string& path);
  /// Creates a directory; with `parents`, missing parents too and an existing one is fine.
  void mkdir(const std::string& path, bool parents = false, uint32_t mode = 0755);
  /// Removes a file, symlink or empty directory; with `recursive`, a whole tree.
  void remove(const std::string& path, bool recursive = false);
  /// Renames `from` to `to` in the guest.
  void rename(const std::string& from, const std::string& to);

  /// Sets (an empty value deletes) persistent env entries used by later execs. All or nothing.
  void set_env(const std::map<std::string, std::string>& env);
  /// Stores a secret at /run/forkvm/secrets/<name> (mode 0600).
  void set_secret(const std::string& name, std::string_view value);
  /// Removes every secret in /run/forkvm/secrets, each overwritten with zeros in place before
  /// it is unlinked (MESSAGES.md "clear_secrets"). Returns how many there were.
  size_t clear_secrets();
  /// Gives the guest fresh entropy (with an immediate CRNG reseed), the wall clock and
  /// optionally a hostname (MESSAGES.md "identity"). Fork and restore call it for every child.
  void set_identity(const GuestIdentity& identity);
  /// set_identity() without waiting for the answer: the identity frame is sent now, and the
  /// returned call waits for its answer and throws as set_identity() would. The agent handles
  /// a connection's frames in order and refuses every request after a failed identity
  /// (MESSAGES.md "identity"), so the requests sent after this one run with the new identity
  /// or not at all. Throws now only when the frame cannot be sent.
  std::function<void()> send_identity(const GuestIdentity& identity);

  struct Impl;

 private:
  explicit AgentClient(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace forkvm
