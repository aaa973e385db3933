// forkvm::AgentClient: the request types of protocol v1 on top of AgentClient::Impl
// (client_impl.cpp) and ExecProcess (exec_process.cpp).
#include "forkvm/agent_client.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <istream>

#include "base/text.hpp"
#include "contract/protocol/messages.hpp"
#include "sandbox/client_impl.hpp"
#include "sandbox/exec_process.hpp"
#include "sandbox/local_file.hpp"
#include "sandbox/requests.hpp"

namespace forkvm {
namespace proto = forkvm::protocol;
using nlohmann::json;
using sandbox::Clock;
using sandbox::Pending;

namespace {

// Sends a write_file request and its data, pulled from `read` (returns 0 at the end) one
// chunk at a time, so a file of any size is never held whole.
uint64_t write_stream(AgentClient::Impl& c, const std::string& path, uint32_t mode,
                      const std::function<size_t(char*, size_t)>& read) {
  auto p = c.new_request(sandbox::write_file_request(path, mode), {}, path);
  uint64_t total = 0;
  std::exception_ptr local_error;
  for (;;) {
    {
      std::lock_guard lock(p->m);
      if (p->done) break;  // the agent already refused: skip the rest, still send file_end
    }
    std::string chunk(proto::kChunkBytes, '\0');
    size_t n = 0;
    try {
      n = read(chunk.data(), chunk.size());
    } catch (...) {
      local_error = std::current_exception();
      break;
    }
    if (n == 0) break;
    chunk.resize(n);
    total += n;
    c.send_frame({{"type", proto::msg::kFileData}, {"id", p->id}}, std::move(chunk));
  }
  if (local_error) {
    // Nothing must be committed: cancel makes the agent drop the temp file.
    try {
      c.control(proto::msg::kCancel, p->id);
    } catch (const OperationError&) {
    }
  }
  c.send_frame({{"type", proto::msg::kFileEnd}, {"id", p->id}}, {});
  AgentClient::Impl::touch(*p);  // the clock starts now, not when the first byte went out
  const proto::Frame f = *c.wait_terminal(*p, std::nullopt, true);
  if (local_error) std::rethrow_exception(local_error);
  if (f.header.value("type", "") == proto::msg::kError) {
    throw sandbox::error_from_frame(f.header, p->op, p->path);
  }
  return total;
}

// Reads a guest file into `sink` chunk by chunk (on the reader thread), at most `max_bytes`
// in all: `op` names the caller's operation in the kTooLarge error.
uint64_t read_stream(AgentClient::Impl& c, const std::string& op, const std::string& path,
                     uint64_t max_bytes, std::function<void(std::string_view)> sink) {
  auto count = std::make_shared<uint64_t>(0);
  auto p = c.new_request(
      sandbox::path_request(proto::msg::kReadFile, path), {}, path,
      [sink = std::move(sink), count, max_bytes, op, path](Pending&, proto::Frame& f) {
        if (f.header["type"] != proto::msg::kFileData) return;
        // Agent-controlled: counted here, whatever size the agent reports or ignores.
        if (f.payload.size() > max_bytes - *count) {
          throw OperationError(ErrorKind::kTooLarge, op, path,
                               "the file is longer than the limit of " +
                                   std::to_string(max_bytes) + " bytes",
                               std::nullopt, false);
        }
        *count += f.payload.size();
        sink(f.payload);
      });
  // The sink writes into the caller's objects (read_file's string, download_file's file): no
  // call of it may run once this returns, however it returns. A timeout or a closed connection
  // ends the wait while the reader thread may be inside the sink (seen: the reader appending
  // to read_file's string while the caller freed it).
  struct StopDelivery {
    AgentClient::Impl& c;
    Pending& p;
    ~StopDelivery() { c.stop_delivery(p); }
  } stop_delivery{c, *p};
  auto f = c.wait_terminal(*p, std::nullopt, true, true);
  if (!f) {
    // The limit or the sink stopped the read: cancel it, then give the agent one request
    // timeout to end it. An agent that keeps sending holds the caller no longer than the
    // cancel's answer (one request timeout) and that (its frames are dropped unread), and the
    // request is forgotten. An error on the way (not running any more, no answer in time, the
    // connection gone) ends the wait early and changes nothing: the read failed, with the
    // reason below.
    try {
      c.control(proto::msg::kCancel, p->id);
      (void)c.wait_terminal(*p, Clock::now() + c.options.request_timeout, false);
    } catch (const Error&) {
    }
    c.forget(p->id);
    std::lock_guard lock(p->m);
    std::rethrow_exception(p->callback_error);
  }
  {
    std::lock_guard lock(p->m);
    if (p->callback_error) std::rethrow_exception(p->callback_error);
  }
  if (f->header.value("type", "") == proto::msg::kError) {
    throw sandbox::error_from_frame(f->header, p->op, p->path);
  }
  return *count;
}

// Sends a request that needs no payload and returns its ok header.
json simple(AgentClient::Impl& c, json header, const std::string& path, std::string payload = {}) {
  auto p = c.new_request(std::move(header), std::move(payload), path);
  return c.wait_done(*p).header;
}

}  // namespace

AgentClient::AgentClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
AgentClient::~AgentClient() { impl_->close(nullptr); }

std::unique_ptr<AgentClient> AgentClient::connect(const AgentClientOptions& options) {
  return std::unique_ptr<AgentClient>(new AgentClient(std::make_shared<Impl>(options)));
}

std::unique_ptr<AgentClient> AgentClient::attach(int fd, uint32_t version,
                                                 const AgentClientOptions& options) {
  sandbox::UniqueFd owned(fd);
  auto impl = std::make_shared<Impl>(options, std::move(owned), version);
  impl->start_reader();
  return std::unique_ptr<AgentClient>(new AgentClient(std::move(impl)));
}

std::unique_ptr<AgentClient> AgentClient::attach_with_identity(int fd, uint32_t version,
                                                               const AgentClientOptions& options,
                                                               const GuestIdentity& identity,
                                                               std::function<void()>& answer) {
  sandbox::UniqueFd owned(fd);
  auto impl = std::make_shared<Impl>(options, std::move(owned), version);
  // Written on this thread before the reader exists: the answer waits in the socket until the
  // reader starts. A failed write closes the client (no reader to join yet) and throws.
  std::string payload;
  json header = sandbox::identity_request(identity, &payload);
  std::shared_ptr<sandbox::Pending> p =
      impl->new_request(std::move(header), std::move(payload), "");
  impl->start_reader();
  answer = [impl, p] { impl->wait_done(*p); };
  return std::unique_ptr<AgentClient>(new AgentClient(std::move(impl)));
}

AgentClient::Quiet AgentClient::hold_quiet() { return impl_->hold_quiet(); }

void AgentClient::close(std::exception_ptr reason) { impl_->close(std::move(reason)); }
void AgentClient::close_nowait(std::exception_ptr reason) { impl_->close_nowait(std::move(reason)); }
bool AgentClient::connected() const { return impl_->closed_error() == nullptr; }
uint32_t AgentClient::protocol_version() const noexcept { return impl_->version; }

PingResult AgentClient::ping(std::optional<std::chrono::milliseconds> timeout) {
  const auto t0 = Clock::now();
  auto p = impl_->new_request({{"type", proto::msg::kPing}}, {}, "");
  std::optional<Clock::time_point> deadline;
  if (timeout) deadline = t0 + *timeout;
  const json h = impl_->wait_done(*p, deadline).header;
  PingResult r;
  r.round_trip = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
  if (auto it = h.find("version"); it != h.end() && it->is_number_unsigned()) {
    r.version = static_cast<uint32_t>(std::min<uint64_t>(it->get<uint64_t>(), UINT32_MAX));
  }
  if (auto it = h.find("uptime_ms"); it != h.end() && it->is_number_unsigned()) {
    r.uptime = std::chrono::milliseconds(static_cast<int64_t>(std::min<uint64_t>(it->get<uint64_t>(), INT64_MAX)));
  }
  return r;
}

ExecResult AgentClient::exec(const std::vector<std::string>& argv, const ExecOptions& options) {
  return exec_stream(argv, options, {});
}

ExecResult AgentClient::exec_shell(const std::string& command, const ExecOptions& options) {
  if (command.empty()) {
    throw OperationError(ErrorKind::kInvalidArgument, "exec", "", "the shell command is empty",
                         std::nullopt, false);
  }
  if (options.interactive_stdin) {
    throw OperationError(ErrorKind::kInvalidArgument, "exec", "",
                         "interactive_stdin needs start_shell(), not exec_shell()", std::nullopt, false);
  }
  return sandbox::start_exec(impl_, {}, command, options, {})->wait();
}

ExecResult AgentClient::exec_stream(const std::vector<std::string>& argv, const ExecOptions& options,
                                    const ExecCallbacks& callbacks) {
  if (options.interactive_stdin) {
    throw OperationError(ErrorKind::kInvalidArgument, "exec", "",
                         "interactive_stdin needs start(), not exec()", std::nullopt, false);
  }
  return sandbox::start_exec(impl_, argv, {}, options, callbacks)->wait();
}

std::unique_ptr<ExecProcess> AgentClient::start(const std::vector<std::string>& argv,
                                                const ExecOptions& options,
                                                const ExecCallbacks& callbacks) {
  return sandbox::start_exec(impl_, argv, {}, options, callbacks);
}

std::unique_ptr<ExecProcess> AgentClient::start_shell(const std::string& command,
                                                      const ExecOptions& options,
                                                      const ExecCallbacks& callbacks) {
  if (command.empty()) {
    throw OperationError(ErrorKind::kInvalidArgument, "exec", "", "the shell command is empty",
                         std::nullopt, false);
  }
  return sandbox::start_exec(impl_, {}, command, options, callbacks);
}

std::vector<ExecInfo> AgentClient::list_execs() {
  const json h = simple(*impl_, {{"type", proto::msg::kListExecs}}, "");
  std::vector<ExecInfo> out;
  const auto it = h.find("execs");
  if (it == h.end() || !it->is_array()) throw AgentProtocolError("list_execs reply has no 'execs' array");
  for (const auto& e : *it) {
    // Guest-controlled: every field is type-checked by json::get (type_error -> protocol error).
    try {
      ExecInfo info;
      info.id = e.at("id").get<uint64_t>();
      info.pid = e.value("pid", 0);
      info.argv = e.value("argv", std::vector<std::string>{});
      info.running = std::chrono::milliseconds(e.value("running_ms", int64_t{0}));
      out.push_back(std::move(info));
    } catch (const json::exception& ex) {
      throw AgentProtocolError(std::string("list_execs reply: ") + ex.what());
    }
  }
  return out;
}

void AgentClient::write_file(const std::string& path, std::string_view data, uint32_t mode) {
  write_stream(*impl_, path, mode, [&data](char* buf, size_t cap) {
    const size_t n = std::min(cap, data.size());
    std::memcpy(buf, data.data(), n);
    data.remove_prefix(n);
    return n;
  });
}

uint64_t AgentClient::write_file(const std::string& path, std::istream& in, uint32_t mode) {
  return write_stream(*impl_, path, mode, [&in, &path](char* buf, size_t cap) -> size_t {
    in.read(buf, static_cast<std::streamsize>(cap));
    if (in.bad()) {
      throw OperationError(ErrorKind::kIo, "write_file", path, "reading the local stream failed",
                           std::nullopt, false);
    }
    return static_cast<size_t>(in.gcount());
  });
}

uint64_t AgentClient::upload_file(const std::string& local_path, const std::string& path,
                                  uint32_t mode) {
  sandbox::check_path("write_file", path);
  std::ifstream in(local_path, std::ios::binary);
  if (!in) sandbox::local_file_error("upload_file", local_path, errno);
  return write_file(path, in, mode);
}

std::string AgentClient::read_file(const std::string& path, uint64_t max_bytes) {
  std::string data;
  read_stream(*impl_, "read_file", path, max_bytes,
              [&data](std::string_view chunk) { data.append(chunk); });
  return data;
}

uint64_t AgentClient::read_file(const std::string& path,
                                const std::function<void(std::string_view)>& sink,
                                uint64_t max_bytes) {
  return read_stream(*impl_, "read_file", path, max_bytes, sink);
}

uint64_t AgentClient::download_file(const std::string& path, const std::string& local_path,
                                    uint64_t max_bytes) {
  sandbox::check_path("read_file", path);
  sandbox::LocalDownload out(local_path);  // removed again unless committed
  const uint64_t n = read_stream(*impl_, "download_file", path, max_bytes,
                                 [&out](std::string_view chunk) { out.write(chunk); });
  out.commit();
  return n;
}

FileStat AgentClient::stat(const std::string& path) {
  return sandbox::parse_stat(simple(*impl_, sandbox::path_request(proto::msg::kStat, path), path));
}

bool AgentClient::exists(const std::string& path) {
  const json h = simple(*impl_, sandbox::path_request(proto::msg::kExists, path), path);
  const auto it = h.find("exists");
  if (it == h.end() || !it->is_boolean()) throw AgentProtocolError("exists reply has no boolean 'exists'");
  return it->get<bool>();
}

std::vector<DirEntry> AgentClient::list_dir(const std::string& path) {
  const json h = simple(*impl_, sandbox::path_request(proto::msg::kListDir, path), path);
  const auto it = h.find("entries");
  if (it == h.end() || !it->is_array()) throw AgentProtocolError("list_dir reply has no 'entries' array");
  std::vector<DirEntry> out;
  out.reserve(it->size());
  for (const auto& e : *it) {
    const auto name = e.is_object() ? e.find("name") : e.end();
    if (!e.is_object() || name == e.end() || !name->is_string()) {
      throw AgentProtocolError("list_dir entry without a name");
    }
    out.push_back(DirEntry{name->get<std::string>(), sandbox::parse_stat(e)});
  }
  return out;
}

void AgentClient::mkdir(const std::string& path, bool parents, uint32_t mode) {
  simple(*impl_, sandbox::mkdir_request(path, parents, mode), path);
}

void AgentClient::remove(const std::string& path, bool recursive) {
  simple(*impl_, sandbox::remove_request(path, recursive), path);
}

void AgentClient::rename(const std::string& from, const std::string& to) {
  simple(*impl_, sandbox::rename_request(from, to), from);
}

void AgentClient::set_env(const std::map<std::string, std::string>& env) {
  simple(*impl_, sandbox::set_env_request(env), "");
}

void AgentClient::set_identity(const GuestIdentity& identity) {
  std::string payload;
  json header = sandbox::identity_request(identity, &payload);
  simple(*impl_, std::move(header), "", std::move(payload));
}

std::function<void()> AgentClient::send_identity(const GuestIdentity& identity) {
  std::string payload;
  json header = sandbox::identity_request(identity, &payload);
  std::shared_ptr<sandbox::Pending> p = impl_->new_request(std::move(header), std::move(payload), "");
  // The Impl outlives a close (the client's destructor closes it, the call then throws the
  // closed error): keep it alive with the call.
  return [impl = impl_, p] { impl->wait_done(*p); };
}

size_t AgentClient::clear_secrets() {
  const json h = simple(*impl_, {{"type", proto::msg::kClearSecrets}}, "");
  // Agent-controlled: a count, checked to be a non-negative integer.
  const auto it = h.find("cleared");
  if (it == h.end() || !it->is_number_unsigned()) {
    throw AgentProtocolError("clear_secrets reply has no 'cleared' count");
  }
  return it->get<size_t>();
}

void AgentClient::set_secret(const std::string& name, std::string_view value) {
  simple(*impl_, sandbox::set_secret_request(name, value), "", std::string(value));
}

}  // namespace forkvm
