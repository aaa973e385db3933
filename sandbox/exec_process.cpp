#include "sandbox/exec_process.hpp"

#include <utility>

#include "base/text.hpp"
#include "contract/protocol/messages.hpp"
#include "sandbox/requests.hpp"

namespace forkvm {
namespace proto = forkvm::protocol;
using nlohmann::json;
using sandbox::Clock;
using sandbox::Pending;

namespace sandbox {
namespace {

// Reader thread: routes "started", "stdout" and "stderr" of one exec.
void on_exec_frame(ExecStreams& s, Pending& p, proto::Frame& f) {
  const auto& type = f.header["type"].get_ref<const std::string&>();
  if (type == proto::msg::kStarted) {
    int pid = 0;
    // Guest-controlled: a pid that is not a small positive integer is reported as 0.
    if (auto it = f.header.find("pid"); it != f.header.end() && it->is_number_integer()) {
      const auto v = it->get<int64_t>();
      if (v > 0 && v <= (1 << 30)) pid = static_cast<int>(v);
    }
    std::lock_guard lock(p.m);
    p.started = true;
    p.started_at = Clock::now();
    p.pid = pid;
  } else if (type == proto::msg::kStdout) {
    const std::string_view bytes = take_within_cap(s.out_tally, s.cap, f.payload);
    if (bytes.empty()) return;
    if (s.callbacks.on_stdout) s.callbacks.on_stdout(bytes);
    else s.out += bytes;
  } else if (type == proto::msg::kStderr) {
    const std::string_view bytes = take_within_cap(s.err_tally, s.cap, f.payload);
    if (bytes.empty()) return;
    if (s.callbacks.on_stderr) s.callbacks.on_stderr(bytes);
    else s.err += bytes;
  }
}

void send_stdin(AgentClient::Impl& c, uint64_t id, std::string_view bytes) {
  while (!bytes.empty()) {
    const size_t n = std::min(bytes.size(), proto::kChunkBytes);
    c.send_frame({{"type", proto::msg::kStdin}, {"id", id}}, std::string(bytes.substr(0, n)));
    bytes.remove_prefix(n);
  }
}

}  // namespace

std::string_view take_within_cap(StreamTally& t, uint64_t cap, std::string_view bytes) {
  // Agent-controlled: the guest caps each stream at `cap` too, but the host does not rely on
  // it. What does not fit is dropped here, as the guest would have dropped it.
  const uint64_t room = t.bytes < cap ? cap - t.bytes : 0;
  if (bytes.size() > room) {
    t.truncated = true;
    bytes = bytes.substr(0, static_cast<size_t>(room));
  }
  t.bytes += bytes.size();
  return bytes;
}

std::unique_ptr<ExecProcess> start_exec(const std::shared_ptr<AgentClient::Impl>& client,
                                        const std::vector<std::string>& argv,
                                        const std::string& shell, const ExecOptions& options,
                                        const ExecCallbacks& callbacks) {
  const bool wants_stdin = options.interactive_stdin || options.stdin_data.has_value();
  json header = exec_request(argv, shell, options, wants_stdin);
  auto streams = std::make_shared<ExecStreams>();
  streams->callbacks = callbacks;
  streams->cap = options.max_output_bytes;
  const std::string what = shell.empty() ? argv.front() : "/bin/sh -c";
  const auto requested_at = Clock::now();
  auto p = client->new_request(std::move(header), {}, what,
                               [streams](Pending& pd, proto::Frame& f) { on_exec_frame(*streams, pd, f); });
  // The agent answers "started" once the program runs, or an error if it could not, within
  // request_timeout of the request: a deadline, not an inactivity clock, so that output an
  // agent sends before "started" cannot keep the caller waiting.
  {
    const auto deadline = Clock::now() + client->options.request_timeout;
    std::unique_lock lock(p->m);
    while (!p->started && !p->done) {
      if (p->cv.wait_until(lock, deadline) == std::cv_status::timeout && !p->started && !p->done) {
        lock.unlock();
        client->forget(p->id);
        throw TimeoutError("the agent did not start exec " + what + " within " +
                           millis_text(client->options.request_timeout));
      }
    }
    if (p->done && p->error) std::rethrow_exception(p->error);
    if (p->done && p->terminal->header.value("type", "") == proto::msg::kError) {
      throw error_from_frame(p->terminal->header, p->op, p->path);
    }
  }
  auto impl = std::make_shared<ExecProcess::Impl>();
  impl->client = client;
  impl->pending = p;
  impl->streams = streams;
  impl->guest_timeout = options.timeout;
  impl->requested_at = requested_at;
  {
    std::lock_guard lock(p->m);
    impl->started_at = p->started ? p->started_at : Clock::now();
  }
  impl->stdin_open = options.interactive_stdin;
  auto process = std::make_unique<ExecProcess>(impl);
  if (options.stdin_data && !options.interactive_stdin) {
    send_stdin(*client, p->id, *options.stdin_data);
    client->send_frame({{"type", proto::msg::kStdinClose}, {"id", p->id}}, {});
  } else if (options.stdin_data) {
    send_stdin(*client, p->id, *options.stdin_data);
  }
  return process;
}

}  // namespace sandbox

void ExecProcess::Impl::send_cancel() {
  {
    std::lock_guard lock(mutex);
    if (cancel_sent) return;
    cancel_sent = true;
  }
  try {
    client->control(proto::msg::kCancel, pending->id);
  } catch (const OperationError& e) {
    if (e.kind() != ErrorKind::kNotRunning) throw;
  }
}

std::optional<ExecResult> ExecProcess::Impl::wait_until(std::optional<Clock::time_point> deadline) {
  {
    std::lock_guard lock(mutex);
    if (failure) std::rethrow_exception(failure);
    if (result) return result;
  }
  Pending& p = *pending;
  std::unique_lock lock(p.m);
  for (;;) {
    if (p.done) break;
    if (p.callback_error) {
      // A callback threw: stop the command, then report the callback's exception (also when
      // the cancel itself fails or goes unanswered: the wait below is bounded either way).
      lock.unlock();
      try {
        send_cancel();
      } catch (const Error&) {
      }
      lock.lock();
      p.cv.wait_until(lock, Clock::now() + client->options.request_timeout, [&] { return p.done; });
      if (!p.done) {
        lock.unlock();
        client->forget(p.id);
        lock.lock();
      }
      break;
    }
    if (!deadline) {
      p.cv.wait(lock);
    } else if (p.cv.wait_until(lock, *deadline) == std::cv_status::timeout && !p.done &&
               !p.callback_error) {
      return std::nullopt;
    }
  }
  // Settle the outcome once; wait() may be called again.
  std::exception_ptr error = p.callback_error ? p.callback_error : p.error;
  std::optional<ExecResult> r;
  if (!error) {
    const json& h = p.terminal->header;
    try {
      if (h.value("type", "") == proto::msg::kError) throw sandbox::error_from_frame(h, p.op, p.path);
      if (h.value("type", "") != proto::msg::kExit) {
        throw AgentProtocolError("exec ended with a '" + printable(h.value("type", ""), 64) +
                                 "' frame, not 'exit'");
      }
      ExecResult res;
      sandbox::parse_exit(h, res);
      res.pid = p.pid;
      res.until_started = started_at - requested_at;
      res.stdout_truncated = res.stdout_truncated || streams->out_tally.truncated;
      res.stderr_truncated = res.stderr_truncated || streams->err_tally.truncated;
      res.stdout_data = std::move(streams->out);
      res.stderr_data = std::move(streams->err);
      r = std::move(res);
    } catch (...) {
      error = std::current_exception();
    }
  }
  lock.unlock();
  std::function<void()> hook;
  {
    std::lock_guard outcome(mutex);
    stdin_open = false;
    if (error) {
      failure = error;
      std::rethrow_exception(error);
    }
    // Keep everything but the output for later wait() calls: a 64 MiB capture is not held
    // twice.
    std::string out = std::move(r->stdout_data);
    std::string err = std::move(r->stderr_data);
    result = *r;
    r->stdout_data = std::move(out);
    r->stderr_data = std::move(err);
    hook = std::exchange(after_end, nullptr);
  }
  if (hook) hook();
  return r;
}

ExecProcess::ExecProcess(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

ExecProcess::~ExecProcess() {
  if (!impl_ || done()) return;
  // Best effort, without waiting for the answer: the agent kills the command's group.
  try {
    auto c = impl_->client->new_request(
        {{"type", proto::msg::kCancel}, {"target", impl_->pending->id}}, {}, "");
    impl_->client->forget(c->id);
  } catch (...) {
  }
  impl_->client->forget(impl_->pending->id);
}

uint64_t ExecProcess::id() const noexcept { return impl_->pending->id; }

int ExecProcess::pid() const noexcept {
  std::lock_guard lock(impl_->pending->m);
  return impl_->pending->pid;
}

void ExecProcess::write_stdin(std::string_view bytes) {
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->stdin_open) {
      throw InvalidStateError("exec stdin is not open (needs ExecOptions::interactive_stdin, and "
                              "not after close_stdin() or the end of the command)");
    }
  }
  if (done()) throw InvalidStateError("the command has ended; its stdin is gone");
  sandbox::send_stdin(*impl_->client, impl_->pending->id, bytes);
}

void ExecProcess::close_stdin() {
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->stdin_open) return;
    impl_->stdin_open = false;
  }
  if (done()) return;
  impl_->client->send_frame({{"type", proto::msg::kStdinClose}, {"id", impl_->pending->id}}, {});
}

void ExecProcess::signal(int signo) {
  if (signo <= 0 || signo >= 65) {
    throw OperationError(ErrorKind::kInvalidArgument, "signal", "",
                         "signal " + std::to_string(signo) + " is not in 1..64", std::nullopt, false);
  }
  impl_->client->control(proto::msg::kSignal, impl_->pending->id, {{"signal", signo}});
}

void ExecProcess::cancel() {
  if (done()) return;
  impl_->send_cancel();
}

bool ExecProcess::done() const {
  std::lock_guard lock(impl_->pending->m);
  return impl_->pending->done;
}

std::optional<ExecResult> ExecProcess::wait_for(std::chrono::milliseconds timeout) {
  return impl_->wait_until(Clock::now() + timeout);
}

ExecResult ExecProcess::wait(std::optional<std::chrono::milliseconds> timeout) {
  std::optional<Clock::time_point> deadline;
  if (timeout) {
    deadline = Clock::now() + *timeout;
  } else if (impl_->guest_timeout) {
    deadline = impl_->started_at + *impl_->guest_timeout + impl_->client->options.exec_grace;
  }
  if (auto r = impl_->wait_until(deadline)) return std::move(*r);
  throw TimeoutError((timeout ? "exec " + impl_->pending->path + " still running after " +
                                    millis_text(*timeout)
                              : "exec " + impl_->pending->path +
                                    ": the agent did not report the end of the command " +
                                    std::to_string(impl_->client->options.exec_grace.count()) +
                                    " ms after its timeout") +
                     " (" + impl_->progress() + ")");
}

std::string ExecProcess::Impl::progress() const {
  // When the host last heard of this command, to tell one still running (its output keeps
  // coming) from a stalled agent or connection (nothing since "started").
  const auto now = Clock::now();
  const auto ms = [&](Clock::time_point t) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count());
  };
  int pid = 0;
  Clock::time_point last;
  {
    std::lock_guard lock(pending->m);
    pid = pending->pid;
    last = pending->last_activity;
  }
  return "guest pid " + std::to_string(pid) + ", started " + ms(started_at) +
         " ms ago; the last frame for it came " + ms(last) + " ms ago";
}

}  // namespace forkvm
