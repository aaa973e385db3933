#include "bench/qemu_restore.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "base/fd.hpp"
#include "base/text.hpp"
#include "bench/qmp.hpp"
#include "bench/serial_responder.hpp"

extern char** environ;

namespace forkvm::bench {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string tail_of(const std::string& s, size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }

std::string file_tail(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return tail_of(ss.str(), n);
}

/// `text` from a guest console made safe to print line by line (printable() per line).
std::string shown_lines(const std::string& text) {
  std::string out;
  size_t at = 0;
  while (at < text.size()) {
    size_t eol = text.find('\n', at);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + at, eol - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out += printable(line, 400) + "\n";
    at = eol + 1;
  }
  return out;
}

/// Milliseconds left until `deadline` for poll(): at least 0, at most `cap`.
int poll_ms(Clock::time_point deadline, int cap) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, cap));
}

/// One QEMU process: its console (stdin and stdout: -serial stdio) on pipes, its stderr in a
/// file. Killed and reaped by stop() or the destructor.
class QemuProcess {
 public:
  QemuProcess(const std::vector<std::string>& args, const std::string& stderr_path)
      : stderr_path_(stderr_path) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + errno_text(errno));
    Fd in_read(in[0]);
    in_.reset(in[1]);
    if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + errno_text(errno));
    out_.reset(out[0]);
    Fd out_write(out[1]);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    // dup2 onto 0 and 1 clears close-on-exec there; every other descriptor of ours has it.
    posix_spawn_file_actions_adddup2(&fa, in_read.get(), STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out_write.get(), STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, stderr_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    started_ = Clock::now();
    const int err = posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) throw std::runtime_error("cannot start " + args[0] + ": " + errno_text(err));
  }
  ~QemuProcess() { stop(std::chrono::milliseconds(0)); }
  QemuProcess(const QemuProcess&) = delete;
  QemuProcess& operator=(const QemuProcess&) = delete;

  Clock::time_point started() const { return started_; }

  /// Whether QEMU has exited (reaped here).
  bool exited() {
    if (!reaped_ && waitpid(pid_, nullptr, WNOHANG) == pid_) reaped_ = true;
    return reaped_;
  }

  /// Writes `bytes` to the guest's serial port.
  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(in_.get(), bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("writing to QEMU's serial port: " + errno_text(errno) + diagnostics());
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }

  /// Reads the console until `done(console)`; false at `deadline`. Throws when the console
  /// closes first (QEMU exited).
  bool read_console_until(const std::function<bool(const std::string&)>& done, Clock::time_point deadline) {
    while (!done(console_)) {
      if (Clock::now() >= deadline) return false;
      pollfd p{out_.get(), POLLIN, 0};
      if (poll(&p, 1, poll_ms(deadline, 100)) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(out_.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("QEMU exited" + diagnostics());
      console_.append(buf, static_cast<size_t>(n));
      if (console_.size() > (1u << 20)) console_.erase(0, console_.size() - (64u << 10));
    }
    return true;
  }

  /// The tails of the console and of stderr, for an error message.
  std::string diagnostics() const {
    return "\n--- QEMU console (tail) ---\n" + shown_lines(tail_of(console_, 1200)) +
           "\n--- QEMU stderr (tail) ---\n" + shown_lines(file_tail(stderr_path_, 800));
  }

  /// Gives QEMU `grace` to exit by itself, then kills it; reaps it, waiting at most 10 s for a
  /// process stuck in the kernel (a wedged nested vCPU) rather than blocking the benchmark.
  void stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return;
    const auto give_up = Clock::now() + grace;
    while (!exited() && Clock::now() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!exited()) kill(pid_, SIGKILL);
    const auto limit = Clock::now() + std::chrono::seconds(10);
    while (!exited() && Clock::now() < limit) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    pid_ = -1;
  }

 private:
  std::string stderr_path_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  Fd in_, out_;
  Clock::time_point started_;
  std::string console_;
};

/// A QMP connection to one QEMU.
class QmpClient {
 public:
  /// Connects to `path`, retried every 2 ms while QEMU starts and makes the socket, and reads
  /// the greeting. Throws when QEMU exits first or at `deadline`.
  QmpClient(const std::string& path, QemuProcess& qemu, Clock::time_point deadline) : qemu_(qemu) {
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (path.size() >= sizeof un.sun_path) throw std::runtime_error("QMP socket path too long: " + path);
    std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
    for (;;) {
      Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd) throw std::runtime_error("socket: " + errno_text(errno));
      if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&un), sizeof un) == 0) {
        fd_ = std::move(fd);
        break;
      }
      if (errno != ENOENT && errno != ECONNREFUSED) {
        throw std::runtime_error("connect " + path + ": " + errno_text(errno));
      }
      if (qemu_.exited()) throw std::runtime_error("QEMU exited before its QMP socket listened" + qemu_.diagnostics());
      if (Clock::now() >= deadline) throw std::runtime_error("QEMU's QMP socket did not listen in time" + qemu_.diagnostics());
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const QmpMessage m = read(deadline);
    if (m.kind != QmpMessage::Kind::kGreeting) throw std::runtime_error("QMP: no greeting first");
    greeting_ = m.body;
  }

  const nlohmann::json& greeting() const { return greeting_; }

  /// Runs `command` and returns its "return" value; events that arrive meanwhile are
  /// remembered (seen()). Throws on an error reply, a closed socket or the deadline.
  nlohmann::json execute(const std::string& command, const nlohmann::json& arguments,
                         Clock::time_point deadline) {
    const std::string line = qmp_command(command, arguments);
    for (std::string_view rest = line; !rest.empty();) {
      const ssize_t n = ::send(fd_.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("QMP send " + command + ": " + errno_text(errno) + qemu_.diagnostics());
      rest.remove_prefix(static_cast<size_t>(n));
    }
    for (;;) {
      QmpMessage m = read(deadline);
      if (m.kind == QmpMessage::Kind::kReturn) return std::move(m.body);
      if (m.kind == QmpMessage::Kind::kError) throw std::runtime_error("QMP " + command + ": " + m.text);
    }
  }

  /// Reads until the event `name` has arrived (at once if it already has).
  void wait_event(const std::string& name, Clock::time_point deadline) {
    while (!seen(name)) {
      if (read(deadline).kind == QmpMessage::Kind::kReturn) continue;  // nothing is pending
    }
  }

  bool seen(const std::string& name) const {
    return std::find(events_.begin(), events_.end(), name) != events_.end();
  }

 private:
  /// The next message; events are recorded as they pass.
  QmpMessage read(Clock::time_point deadline) {
    for (;;) {
      const size_t eol = buf_.find('\n');
      if (eol != std::string::npos) {
        const std::string line = buf_.substr(0, eol);
        buf_.erase(0, eol + 1);
        QmpMessage m = parse_qmp_line(line);
        if (m.kind == QmpMessage::Kind::kEvent) events_.push_back(m.text);
        return m;
      }
      if (buf_.size() > (1u << 20)) throw std::runtime_error("QMP: a line over 1 MiB");
      if (Clock::now() >= deadline) throw std::runtime_error("QMP: no answer in time" + qemu_.diagnostics());
      pollfd p{fd_.get(), POLLIN, 0};
      if (poll(&p, 1, poll_ms(deadline, 100)) <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("QMP: QEMU closed the connection" + qemu_.diagnostics());
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  QemuProcess& qemu_;
  Fd fd_;
  std::string buf_;
  nlohmann::json greeting_;
  std::vector<std::string> events_;
};

/// Asks QEMU to quit and reaps it (killed after 5 s). Errors are of no interest any more: the
/// measurement is over.
void quit(QmpClient& qmp, QemuProcess& qemu) {
  try {
    qmp.execute("quit", nullptr, Clock::now() + std::chrono::seconds(5));
  } catch (const std::exception&) {
    // QEMU may close the socket before its answer arrives.
  }
  qemu.stop(std::chrono::seconds(5));
}

std::string shell_quoted(const std::string& path) {
  if (path.find('\'') != std::string::npos) throw std::runtime_error("a path with a quote: " + path);
  return "'" + path + "'";
}

}  // namespace

QemuRestoreReference::QemuRestoreReference(QemuBoot boot, std::string dir)
    : boot_(std::move(boot)), dir_(std::move(dir)), migration_file_(dir_ + "/qemu-migration") {}

std::vector<std::string> QemuRestoreReference::argv(const std::string& qmp_socket, bool incoming) const {
  std::vector<std::string> a = qemu_microvm_argv(boot_, serial_responder_cmdline());
  a.insert(a.end(), {"-qmp", "unix:" + qmp_socket + ",server=on,wait=off"});
  if (incoming) a.insert(a.end(), {"-incoming", "exec:cat " + shell_quoted(migration_file_)});
  return a;
}

std::string QemuRestoreReference::restore_command_text() const {
  std::string out;
  for (const auto& a : argv(dir_ + "/restore.qmp", true)) {
    out += (out.empty() ? "" : " ") +
           (a.find_first_of(" \"'$;<>") == std::string::npos ? a
            : a.find('\'') == std::string::npos           ? "'" + a + "'"
                                                          : "\"" + a + "\"");
  }
  return out;
}

void QemuRestoreReference::prepare() {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(boot_.timeout_s));
  const std::string sock = dir_ + "/source.qmp";
  ::unlink(sock.c_str());
  QemuProcess qemu(argv(sock, false), dir_ + "/qemu-source.stderr");
  QmpClient qmp(sock, qemu, deadline);
  version_ = qmp_greeting_version(qmp.greeting());
  qmp.execute("qmp_capabilities", nullptr, deadline);
  if (!qemu.read_console_until([](const std::string& c) { return c.find(kResponderReady) != std::string::npos; },
                               deadline)) {
    throw std::runtime_error("the QEMU guest's responder did not start in time" + qemu.diagnostics());
  }
  qemu.send(responder_request(0));
  if (!qemu.read_console_until([](const std::string& c) { return responder_answered(c, 0); }, deadline)) {
    throw std::runtime_error("the QEMU guest's responder did not answer" + qemu.diagnostics());
  }
  source_boot_ms_ = ms_since(qemu.started());
  // Migrated while the guest runs: the destination then starts its vCPUs by itself once the
  // stream is loaded (a paused source would leave it paused).
  const auto t0 = Clock::now();
  qmp.execute("migrate", {{"uri", "exec:cat > " + shell_quoted(migration_file_)}}, deadline);
  for (;;) {
    const nlohmann::json r = qmp.execute("query-migrate", nullptr, deadline);
    const std::string status = parse_migration_status(r);
    if (status == "completed") break;
    if (status == "failed" || status == "cancelled") {
      throw std::runtime_error("QEMU's migration to " + migration_file_ + " " + status + ": " +
                               r.value("error-desc", std::string("(no reason given)")) + qemu.diagnostics());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  migrate_ms_ = ms_since(t0);
  quit(qmp, qemu);
  struct stat st{};
  if (::stat(migration_file_.c_str(), &st) != 0 || st.st_size == 0) {
    throw std::runtime_error("QEMU wrote no migration file " + migration_file_);
  }
  migration_bytes_ = static_cast<uint64_t>(st.st_size);
}

QemuRestoreSample QemuRestoreReference::restore_once(unsigned round) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(boot_.timeout_s));
  const std::string sock = dir_ + "/restore.qmp";
  ::unlink(sock.c_str());
  QemuRestoreSample s;
  QemuProcess qemu(argv(sock, true), dir_ + "/qemu-restore.stderr");
  QmpClient qmp(sock, qemu, deadline);
  s.qmp_ms = ms_since(qemu.started());
  qmp.execute("qmp_capabilities", nullptr, deadline);
  // A RESUME sent before the capabilities were negotiated is not delivered: ask for the
  // state first, then wait for the event only if the guest is still loading.
  const QmpRunState state = parse_query_status(qmp.execute("query-status", nullptr, deadline));
  if (!state.running) {
    if (state.status != "inmigrate" && !qmp.seen("RESUME")) {
      throw std::runtime_error("the restored QEMU guest is '" + state.status + "', not loading or running" +
                               qemu.diagnostics());
    }
    qmp.wait_event("RESUME", deadline);
  }
  s.running_ms = ms_since(qemu.started());
  qemu.send(responder_request(round));
  if (!qemu.read_console_until([round](const std::string& c) { return responder_answered(c, round); }, deadline)) {
    throw std::runtime_error("the restored QEMU guest did not answer request " + std::to_string(round) +
                             qemu.diagnostics());
  }
  s.answer_ms = ms_since(qemu.started());
  quit(qmp, qemu);
  return s;
}

}  // namespace forkvm::bench
