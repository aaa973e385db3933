// exec requests (MESSAGES.md "exec"): starting, streaming output under back-pressure and
// caps, stdin, signals, timeouts, reaping (as PID 1, orphans too) and the exit frame.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <map>

#include "contract/protocol/field_rules.hpp"
#include "contract/protocol/messages.hpp"
#include "guest-init/agent/fields.hpp"
#include "guest-init/agent/server_impl.hpp"
#include "guest-init/agent/spawn.hpp"

namespace forkvm::agent {
namespace {

namespace msg = protocol::msg;
namespace code = protocol::code;
using nlohmann::json;

// How long the exit frame waits for pipes a background child keeps open (MESSAGES.md).
constexpr auto kPipeGrace = std::chrono::milliseconds(100);
// At the grace deadline, at most this much more is read from each pipe before it is closed.
constexpr std::size_t kFinalDrainBytes = 1u << 20;
// Highest signal number a "signal" request may name (Linux: SIGRTMAX).
constexpr std::uint64_t kMaxSignal = 64;

bool has_nul(const std::string& s) { return s.find('\0') != std::string::npos; }

std::vector<std::string> parse_argv(const json& header) {
  const auto argv = header.find("argv");
  const auto shell = header.find("shell");
  const bool has_argv = argv != header.end() && !argv->is_null();
  const bool has_shell = shell != header.end() && !shell->is_null();
  if (has_argv == has_shell) {
    throw OpError(code::kInvalidArgument, "exec needs exactly one of \"argv\" and \"shell\"");
  }
  if (has_shell) {
    const std::string& command = string_field(header, "shell");
    if (has_nul(command)) throw OpError(code::kInvalidArgument, "\"shell\" contains a NUL byte");
    return {"/bin/sh", "-c", command};
  }
  if (!argv->is_array() || argv->empty()) {
    throw OpError(code::kInvalidArgument, "\"argv\" must be a non-empty array of strings");
  }
  std::vector<std::string> out;
  for (const auto& arg : *argv) {
    if (!arg.is_string() || has_nul(arg.get_ref<const std::string&>())) {
      throw OpError(code::kInvalidArgument, "\"argv\" items must be strings without NUL");
    }
    out.push_back(arg.get<std::string>());
  }
  if (out[0].empty()) throw OpError(code::kInvalidArgument, "argv[0] is empty");
  return out;
}

std::int64_t ms_since(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

}  // namespace

std::vector<std::string> Server::Impl::compose_env(const json* request_env) const {
  std::map<std::string, std::string> env(options_.base_env.begin(), options_.base_env.end());
  for (auto& [key, value] : store_.load()) env[key] = value;
  if (request_env != nullptr) {
    if (!request_env->is_object()) throw OpError(code::kInvalidArgument, "\"env\" must be an object");
    // Guest-controlled: all entries are checked before the command starts.
    for (const auto& [key, value] : request_env->items()) {
      if (!protocol::valid_env_key(key)) {
        throw OpError(code::kInvalidArgument, "bad env key \"" + key.substr(0, 100) + "\"");
      }
      if (!value.is_string() || !protocol::valid_env_value(value.get_ref<const std::string&>())) {
        throw OpError(code::kInvalidArgument,
                      "env value of \"" + key + "\" must be a string without NUL or newline");
      }
      env[key] = value.get<std::string>();
    }
  }
  std::vector<std::string> out;
  for (const auto& [key, value] : env) out.push_back(key + "=" + value);
  return out;
}

void Server::Impl::start_exec(FramedConn& conn, std::uint64_t id, const json& header) {
  SpawnRequest request;
  request.argv = parse_argv(header);
  const auto env = header.find("env");
  request.env = compose_env(env == header.end() || env->is_null() ? nullptr : &*env);
  if (header.contains("cwd") && !header["cwd"].is_null()) {
    request.cwd = string_field(header, "cwd");
    check_path("cwd", request.cwd);
  }
  request.pipe_stdin = bool_field(header, "stdin", false);
  const std::uint64_t timeout_ms = uint_field(header, "timeout_ms", 0);
  const std::uint64_t max_output = uint_field(header, "max_output_bytes",
                                              protocol::kDefaultMaxOutputBytes);
  SpawnedProcess process = spawn_process(request);  // throws OpError: nothing ran

  const std::uint64_t key = next_key_++;
  Exec& exec = execs_[key];
  exec.conn = conn.key;
  exec.id = id;
  exec.pid = process.pid;
  exec.argv = request.argv;
  exec.started = Clock::now();
  if (timeout_ms > 0) {
    // Clamped to about 100 years so the time_point arithmetic cannot overflow.
    exec.deadline = exec.started + std::chrono::milliseconds(std::min<std::uint64_t>(
                                       timeout_ms, 100ull * 365 * 24 * 3600 * 1000));
  }
  exec.in = std::move(process.stdin_fd);
  exec.out = std::move(process.stdout_fd);
  exec.err = std::move(process.stderr_fd);
  exec.max_output = max_output;
  exec_by_pid_[process.pid] = key;
  conn.execs[id] = key;
  send(conn, {{"type", msg::kStarted}, {"id", id}, {"pid", process.pid}});
}

void Server::Impl::signal_exec(FramedConn& conn, std::uint64_t id, const json& header) {
  const std::uint64_t target = uint_field(header, "target", 0);
  const std::uint64_t signo = uint_field(header, "signal", 0);
  if (signo < 1 || signo > kMaxSignal) {
    throw OpError(code::kInvalidArgument, "\"signal\" must be 1.." + std::to_string(kMaxSignal));
  }
  const auto it = conn.execs.find(target);
  if (it == conn.execs.end() || execs_.at(it->second).exited) {
    throw OpError(code::kNotRunning, "exec " + std::to_string(target) + " is not running");
  }
  if (::kill(-execs_.at(it->second).pid, static_cast<int>(signo)) != 0) {
    throw errno_error(errno, "kill exec " + std::to_string(target));
  }
  send_ok(conn, id);
}

json Server::Impl::list_execs(const FramedConn& conn) const {
  json out = json::array();
  const auto now = Clock::now();
  for (const auto& [id, key] : conn.execs) {
    const Exec& exec = execs_.at(key);
    if (exec.exited) continue;
    out.push_back({{"id", id}, {"pid", exec.pid}, {"argv", exec.argv},
                   {"running_ms", ms_since(exec.started, now)}});
  }
  return out;
}

void Server::Impl::read_output(Exec& exec, bool is_stderr, std::size_t budget) {
  UniqueFd& fd = is_stderr ? exec.err : exec.out;
  std::uint64_t& sent = is_stderr ? exec.err_sent : exec.out_sent;
  bool& truncated = is_stderr ? exec.err_truncated : exec.out_truncated;
  const auto conn = framed_.find(exec.conn);
  while (fd.valid() && budget > 0) {
    const ssize_t n = ::read(fd.get(), io_buf_.get(), std::min(protocol::kChunkBytes, budget));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      fd.reset();  // EOF (or a read error, treated alike)
      return;
    }
    const auto got = static_cast<std::size_t>(n);
    budget -= got;
    // Past the cap the bytes are read and dropped, so the command never blocks on the pipe.
    const std::size_t keep = static_cast<std::size_t>(
        std::min<std::uint64_t>(got, exec.max_output - std::min(sent, exec.max_output)));
    if (keep < got) truncated = true;
    if (keep > 0 && conn != framed_.end()) {
      sent += keep;
      send(conn->second, {{"type", is_stderr ? msg::kStderr : msg::kStdout}, {"id", exec.id}},
           std::string(io_buf_.get(), keep));
    }
    wipe_io(got);
  }
}

void Server::Impl::write_stdin(Exec& exec) {
  while (exec.in.valid() && !exec.stdin_buf.empty()) {
    const ssize_t n = ::write(exec.in.get(), exec.stdin_buf.data(), exec.stdin_buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) {
      // EPIPE: the command closed its stdin; what it did not read is dropped.
      exec.stdin_buf.clear();
      exec.in.reset();
      return;
    }
    exec.stdin_buf.erase(0, static_cast<std::size_t>(n));
  }
  if (exec.stdin_close && exec.stdin_buf.empty()) exec.in.reset();
}

void Server::Impl::reap_children() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;  // 0: none exited; -1 (ECHILD): no children at all
    const auto it = exec_by_pid_.find(pid);
    if (it == exec_by_pid_.end()) continue;  // an orphan, or an exec whose connection closed
    const auto exec = execs_.find(it->second);
    exec_by_pid_.erase(it);
    if (exec == execs_.end()) continue;
    exec->second.exited = true;
    exec->second.status = status;
    exec->second.exited_at = Clock::now();
  }
}

void Server::Impl::on_timers() {
  const auto now = Clock::now();
  for (auto& [key, exec] : execs_) {
    if (!exec.exited && exec.deadline && *exec.deadline <= now && !exec.timed_out) {
      exec.timed_out = true;
      ::kill(-exec.pid, SIGKILL);
    }
  }
}

void Server::Impl::finish_execs() {
  const auto now = Clock::now();
  for (auto it = execs_.begin(); it != execs_.end();) {
    Exec& exec = it->second;
    const bool pipes_done = !exec.out.valid() && !exec.err.valid();
    if (!exec.exited || (!pipes_done && now < exec.exited_at + kPipeGrace)) {
      ++it;
      continue;
    }
    // A background child still holds a pipe: take what is there now, then stop listening.
    read_output(exec, false, kFinalDrainBytes);
    read_output(exec, true, kFinalDrainBytes);
    const auto conn = framed_.find(exec.conn);
    if (conn != framed_.end()) {
      json exit_frame = {{"type", msg::kExit},
                         {"id", exec.id},
                         {"exit_code", nullptr},
                         {"signal", nullptr},
                         {"timed_out", exec.timed_out},
                         {"cancelled", exec.cancelled},
                         {"duration_ms", ms_since(exec.started, exec.exited_at)},
                         {"stdout_truncated", exec.out_truncated},
                         {"stderr_truncated", exec.err_truncated}};
      if (WIFSIGNALED(exec.status)) {
        exit_frame["signal"] = WTERMSIG(exec.status);
      } else {
        exit_frame["exit_code"] = WEXITSTATUS(exec.status);
      }
      send(conn->second, std::move(exit_frame));
      conn->second.execs.erase(exec.id);
    }
    it = execs_.erase(it);
  }
}

void Server::Impl::kill_exec(std::uint64_t key) {
  const auto it = execs_.find(key);
  if (it == execs_.end()) return;
  // The whole group: background children of the command go too. If the leader was reaped,
  // the group id stays reserved while any member lives, so this cannot hit a stranger's group.
  ::kill(-it->second.pid, SIGKILL);
  exec_by_pid_.erase(it->second.pid);
  execs_.erase(it);
}

}  // namespace forkvm::agent
