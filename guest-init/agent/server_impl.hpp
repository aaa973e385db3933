// Internals of Server (server.hpp), split over server.cpp (the loop, sockets, the 5555
// protocol), requests.cpp (framed requests other than exec) and execs.cpp (exec, reaping,
// timeouts). Not a public header.
#pragma once

#include <poll.h>
#include <sys/types.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "contract/protocol/frame.hpp"
#include "contract/protocol/messages.hpp"
#include "guest-init/agent/atomic_file.hpp"
#include "guest-init/agent/env_store.hpp"
#include "guest-init/agent/file_ops.hpp"
#include "guest-init/agent/op_error.hpp"
#include "guest-init/agent/server.hpp"
#include "guest-init/agent/unique_fd.hpp"

namespace forkvm::agent {

/// Bytes read from a socket or an exec's pipe at a time.
inline constexpr std::size_t kIoBytes = 256 * 1024;
static_assert(kIoBytes >= protocol::kChunkBytes, "an output chunk is read in one go");

using Clock = std::chrono::steady_clock;

/// Bytes queued for a peer, sent from `pos` on.
struct Output {
  std::string data;
  std::size_t pos = 0;
  /// Bytes not yet sent.
  [[nodiscard]] std::size_t backlog() const noexcept { return data.size() - pos; }
};

/// One running (or just exited) exec request.
struct Exec {
  std::uint64_t conn = 0;  ///< owning FramedConn
  std::uint64_t id = 0;    ///< request id
  pid_t pid = -1;          ///< also the process group and session id
  nlohmann::json argv;     ///< as reported by list_execs
  Clock::time_point started;
  std::optional<Clock::time_point> deadline;  ///< timeout_ms
  UniqueFd in, out, err;
  std::string stdin_buf;  ///< stdin frames not yet written to the pipe
  bool stdin_close = false;
  std::uint64_t max_output = 0;
  std::uint64_t out_sent = 0, err_sent = 0;
  bool out_truncated = false, err_truncated = false;
  bool exited = false;
  int status = 0;  ///< wait status once exited
  Clock::time_point exited_at;
  bool timed_out = false, cancelled = false;
};

/// A connection speaking the framed protocol.
struct FramedConn {
  std::uint64_t key = 0;
  UniqueFd fd;
  protocol::FrameDecoder decoder;
  bool hello_done = false;
  Output out;
  std::map<std::uint64_t, std::uint64_t> execs;  ///< request id -> exec key
  std::map<std::uint64_t, FileReader> reads;     ///< read_file streams in progress
  std::map<std::uint64_t, AtomicFile> writes;    ///< write_file uploads in progress
  std::set<std::uint64_t> discarding;            ///< failed write_file ids awaiting file_end
  /// An identity request failed: every later request is refused (MESSAGES.md "identity").
  bool identity_failed = false;
  bool closed = false;
};

/// A connection speaking the 5555 newline-delimited JSON protocol.
struct MetaConn {
  std::uint64_t key = 0;
  UniqueFd fd;
  std::string in;
  Output out;
  bool eof = false;  ///< the peer finished sending: close once the answers are out
  bool closed = false;
};

/// The state and the loop of a Server.
class Server::Impl {
 public:
  Impl(int agent_fd, int metadata_fd, ServerOptions options);
  void run();
  void stop() noexcept { running_ = false; }

 private:
  // What a pollfd entry stands for; looked up by key, so a closed object is skipped.
  enum class Source { kSignal, kAgentListen, kMetaListen, kFramed, kMeta, kOut, kErr, kIn };
  struct Tag {
    Source source;
    std::uint64_t key;
  };

  // server.cpp
  void iterate();
  int poll_timeout() const;
  void dispatch(const Tag& tag, short revents);
  void read_signals();
  void accept_framed();
  void accept_meta();
  void read_framed(FramedConn& conn);
  void process_frames(FramedConn& conn);
  void read_meta(MetaConn& conn);
  void process_lines(MetaConn& conn);
  bool flush(int fd, Output& out);
  void close_framed(FramedConn& conn, const std::string& why);
  void collect_closed();
  void log(const std::string& line) const;
  [[nodiscard]] bool congested(const FramedConn& conn) const noexcept;
  [[nodiscard]] bool accepts_input(const FramedConn& conn) const;

  // requests.cpp
  void handle_frame(FramedConn& conn, protocol::Frame frame);
  void handle_request(FramedConn& conn, std::uint64_t id, const std::string& type,
                      const nlohmann::json& header, std::string& payload);
  void handle_stream_frame(FramedConn& conn, std::uint64_t id, const std::string& type,
                           std::string& payload);
  void start_write(FramedConn& conn, std::uint64_t id, const nlohmann::json& header);
  void cancel(FramedConn& conn, std::uint64_t id, const nlohmann::json& header);
  void pump_reads(FramedConn& conn);
  [[nodiscard]] bool in_flight(const FramedConn& conn, std::uint64_t id) const;
  void send(FramedConn& conn, nlohmann::json header, std::string payload = {});
  void send_ok(FramedConn& conn, std::uint64_t id, nlohmann::json fields = nlohmann::json::object());
  void send_error(FramedConn& conn, std::uint64_t id, const OpError& error);

  // execs.cpp
  void start_exec(FramedConn& conn, std::uint64_t id, const nlohmann::json& header);
  void signal_exec(FramedConn& conn, std::uint64_t id, const nlohmann::json& header);
  [[nodiscard]] nlohmann::json list_execs(const FramedConn& conn) const;
  void read_output(Exec& exec, bool is_stderr, std::size_t budget);
  void write_stdin(Exec& exec);
  void reap_children();
  void on_timers();
  void finish_execs();
  void kill_exec(std::uint64_t key);
  [[nodiscard]] std::vector<std::string> compose_env(const nlohmann::json* request_env) const;

  ServerOptions options_;
  EnvStore store_;
  UniqueFd agent_listen_, meta_listen_, signal_fd_;
  Clock::time_point start_time_ = Clock::now();
  bool running_ = false;
  std::uint64_t next_key_ = 1;
  std::map<std::uint64_t, FramedConn> framed_;
  std::map<std::uint64_t, MetaConn> meta_;
  std::map<std::uint64_t, Exec> execs_;
  std::map<pid_t, std::uint64_t> exec_by_pid_;
  std::vector<struct pollfd> pollfds_;
  std::vector<Tag> tags_;
  /// Every read of a socket, an exec's pipe or a file goes here (all on the server's one
  /// thread, none while another is in progress). Made once and not zeroed ahead: a forked VM's
  /// guest then writes only the bytes a read returns. A zeroed 256 KiB string per read wrote
  /// 64 guest pages every time, pages each forked VM had to copy from its template. What a
  /// read put here is wiped once copied out (wipe_io): it may be a secret, and this memory is
  /// in every snapshot and fork.
  std::unique_ptr<char[]> io_buf_ = std::make_unique_for_overwrite<char[]>(kIoBytes);
  void wipe_io(std::size_t n) noexcept { ::explicit_bzero(io_buf_.get(), std::min(n, kIoBytes)); }
};

}  // namespace forkvm::agent
