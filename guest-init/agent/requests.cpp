// The framed protocol's requests other than exec (MESSAGES.md): hello, ping, files, env,
// secrets, cancel; and the helpers that queue reply frames.
#include <csignal>
#include <cstring>
#include <exception>

#include "contract/protocol/hello.hpp"
#include "contract/protocol/messages.hpp"
#include "guest-init/agent/fields.hpp"
#include "guest-init/agent/identity.hpp"
#include "guest-init/agent/server_impl.hpp"

namespace forkvm::agent {
namespace {

namespace msg = protocol::msg;
namespace code = protocol::code;
using nlohmann::json;

// Mode bits a request may set (MESSAGES.md: only the low 12 bits are used).
mode_t mode_field(const json& header, mode_t fallback) {
  return static_cast<mode_t>(uint_field(header, "mode", fallback) & 07777);
}

}  // namespace

void Server::Impl::send(FramedConn& conn, json header, std::string payload) {
  if (conn.closed) return;
  const json id = header.value("id", json(0));
  try {
    conn.out.data += protocol::encode({std::move(header), std::move(payload)});
  } catch (const std::exception& e) {
    // An agent bug (a reply over the header limit, bad UTF-8): the request still ends.
    log(std::string("cannot encode a reply: ") + e.what());
    conn.out.data += protocol::encode(
        {json{{"type", msg::kError}, {"id", id}, {"code", code::kInternal},
              {"message", std::string("the reply could not be encoded: ") + e.what()}},
         {}});
  }
}

void Server::Impl::send_ok(FramedConn& conn, std::uint64_t id, json fields) {
  fields["type"] = msg::kOk;
  fields["id"] = id;
  send(conn, std::move(fields));
}

void Server::Impl::send_error(FramedConn& conn, std::uint64_t id, const OpError& error) {
  json header = {{"type", msg::kError}, {"id", id}, {"code", error.code()},
                 {"message", utf8_or_replaced(error.what())}};
  if (error.error_number() != 0) header["errno"] = error.error_number();
  send(conn, std::move(header));
}

bool Server::Impl::in_flight(const FramedConn& conn, std::uint64_t id) const {
  return conn.execs.contains(id) || conn.reads.contains(id) || conn.writes.contains(id);
}

void Server::Impl::handle_frame(FramedConn& conn, protocol::Frame frame) {
  const json& header = frame.header;
  if (!conn.hello_done) {
    // Throws ProtocolError (BadHello, VersionMismatch): the caller closes the connection.
    (void)protocol::negotiate(protocol::VersionRange{}, header);
    conn.hello_done = true;
    return;
  }
  // validate_header() passed: "type" is a non-empty string and "id" a u64.
  const std::string type = header["type"].get<std::string>();
  const auto id = header["id"].get<std::uint64_t>();
  if (type == msg::kStdin || type == msg::kStdinClose || type == msg::kFileData ||
      type == msg::kFileEnd) {
    handle_stream_frame(conn, id, type, frame.payload);
    return;
  }
  if (in_flight(conn, id)) {
    send_error(conn, id, OpError(code::kInvalidArgument,
                                 "request id " + std::to_string(id) + " is already in flight"));
    return;
  }
  conn.discarding.erase(id);  // a new request reuses the id of a failed upload
  if (conn.identity_failed) {
    // The host may have sent this right behind the identity without waiting for its answer:
    // it must not run with the identity this machine was meant to lose.
    send_error(conn, id, OpError(code::kInvalidArgument,
                                 "this connection's identity request failed; not run"));
    return;
  }
  try {
    handle_request(conn, id, type, header, frame.payload);
  } catch (const OpError& e) {
    if (type == msg::kIdentity) conn.identity_failed = true;
    send_error(conn, id, e);
  } catch (const std::exception& e) {
    if (type == msg::kIdentity) conn.identity_failed = true;
    send_error(conn, id, OpError(code::kInternal, std::string("agent error: ") + e.what()));
  }
}

void Server::Impl::handle_request(FramedConn& conn, std::uint64_t id, const std::string& type,
                                  const json& header, std::string& payload) {
  if (type == msg::kPing) {
    const auto uptime =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_time_);
    send_ok(conn, id, {{"version", protocol::kProtocolVersion}, {"uptime_ms", uptime.count()}});
  } else if (type == msg::kExec) {
    start_exec(conn, id, header);
  } else if (type == msg::kSignal) {
    signal_exec(conn, id, header);
  } else if (type == msg::kCancel) {
    cancel(conn, id, header);
  } else if (type == msg::kListExecs) {
    send_ok(conn, id, {{"execs", list_execs(conn)}});
  } else if (type == msg::kReadFile) {
    conn.reads.try_emplace(id, string_field(header, "path"));
  } else if (type == msg::kWriteFile) {
    start_write(conn, id, header);
  } else if (type == msg::kStat) {
    send_ok(conn, id, stat_path(string_field(header, "path")));
  } else if (type == msg::kExists) {
    send_ok(conn, id, {{"exists", path_exists(string_field(header, "path"))}});
  } else if (type == msg::kListDir) {
    json entries = list_directory(string_field(header, "path"));
    // The reply is one header: it must fit the frame limit (MESSAGES.md "list_dir").
    if (entries.dump(-1, ' ', false, json::error_handler_t::replace).size() + 128 >
        protocol::Limits{}.max_header_len) {
      throw OpError(code::kTooLarge, "the listing of " + string_field(header, "path") +
                                         " (" + std::to_string(entries.size()) +
                                         " entries) does not fit in one reply");
    }
    send_ok(conn, id, {{"entries", std::move(entries)}});
  } else if (type == msg::kMkdir) {
    make_directory(string_field(header, "path"), bool_field(header, "parents", false),
                   mode_field(header, 0755));
    send_ok(conn, id);
  } else if (type == msg::kRemove) {
    remove_path(string_field(header, "path"), bool_field(header, "recursive", false));
    send_ok(conn, id);
  } else if (type == msg::kRename) {
    rename_path(string_field(header, "from"), string_field(header, "to"));
    send_ok(conn, id);
  } else if (type == msg::kSetEnv) {
    const auto env = header.find("env");
    if (env == header.end()) throw OpError(code::kInvalidArgument, "\"env\" is missing");
    store_.set_env(*env);
    send_ok(conn, id);
  } else if (type == msg::kIdentity) {
    const IdentityRequest request = parse_identity(header, payload);
    if (options_.apply_identity) {
      send_ok(conn, id, apply_identity(request));
    } else {
      send_ok(conn, id,
              {{"reseeded", false}, {"clock_set", false}, {"hostname_set", false}, {"dry_run", true}});
    }
  } else if (type == msg::kSetSecret) {
    // Wiped whether or not it was stored: this process keeps no copy of a secret it was sent
    // (the guest's memory is in every snapshot and fork).
    struct Wipe {
      std::string& bytes;
      ~Wipe() { ::explicit_bzero(bytes.data(), bytes.size()); }
    } wipe{payload};
    store_.set_secret(string_field(header, "name"), payload);
    send_ok(conn, id);
  } else if (type == msg::kClearSecrets) {
    send_ok(conn, id, {{"cleared", store_.clear_secrets()}});
  } else {
    throw OpError(code::kUnsupported, "unknown request type \"" + type.substr(0, 100) + "\"");
  }
}

void Server::Impl::start_write(FramedConn& conn, std::uint64_t id, const json& header) {
  const std::string& path = string_field(header, "path");
  try {
    check_path("path", path);
    conn.writes.try_emplace(id, path, mode_field(header, 0644));
  } catch (const OpError&) {
    // The host still sends file_data and file_end for this id: swallow them.
    conn.discarding.insert(id);
    throw;
  }
}

void Server::Impl::handle_stream_frame(FramedConn& conn, std::uint64_t id, const std::string& type,
                                       std::string& payload) {
  if (type == msg::kStdin || type == msg::kStdinClose) {
    const auto it = conn.execs.find(id);
    if (it == conn.execs.end()) return;  // the exec already ended: its stdin is moot
    Exec& exec = execs_.at(it->second);
    if (!exec.in.valid() || exec.stdin_close) return;
    if (type == msg::kStdin) {
      exec.stdin_buf += payload;
      write_stdin(exec);
    } else {
      exec.stdin_close = true;
      if (exec.stdin_buf.empty()) exec.in.reset();
    }
    return;
  }
  if (conn.discarding.contains(id)) {
    if (type == msg::kFileEnd) conn.discarding.erase(id);
    return;
  }
  const auto it = conn.writes.find(id);
  if (it == conn.writes.end()) return;  // not an upload in progress: nothing to do
  try {
    if (type == msg::kFileData) {
      it->second.write(payload);
      return;
    }
    it->second.commit();
    const std::uint64_t size = it->second.size();
    conn.writes.erase(it);
    send_ok(conn, id, {{"size", size}});
  } catch (const OpError& e) {
    conn.writes.erase(it);
    if (type == msg::kFileData) conn.discarding.insert(id);
    send_error(conn, id, e);
  }
}

void Server::Impl::cancel(FramedConn& conn, std::uint64_t id, const json& header) {
  const std::uint64_t target = uint_field(header, "target", 0);
  const OpError cancelled(code::kCancelled, "request " + std::to_string(target) + " was cancelled");
  if (const auto it = conn.execs.find(target); it != conn.execs.end()) {
    Exec& exec = execs_.at(it->second);
    if (exec.exited) {
      throw OpError(code::kNotRunning, "exec " + std::to_string(target) + " has exited");
    }
    exec.cancelled = true;
    ::kill(-exec.pid, SIGKILL);
  } else if (const auto r = conn.reads.find(target); r != conn.reads.end()) {
    conn.reads.erase(r);
    send_error(conn, target, cancelled);
  } else if (const auto w = conn.writes.find(target); w != conn.writes.end()) {
    conn.writes.erase(w);  // removes the temp file
    conn.discarding.insert(target);
    send_error(conn, target, cancelled);
  } else {
    throw OpError(code::kNotRunning, "request " + std::to_string(target) + " is not running");
  }
  send_ok(conn, id);
}

void Server::Impl::pump_reads(FramedConn& conn) {
  for (auto it = conn.reads.begin(); it != conn.reads.end() && !conn.closed;) {
    if (congested(conn)) return;
    const std::uint64_t id = it->first;
    try {
      std::string chunk = it->second.read_chunk(std::span<char>(io_buf_.get(), protocol::kChunkBytes));
      wipe_io(chunk.size());
      if (!chunk.empty()) {
        send(conn, {{"type", msg::kFileData}, {"id", id}}, std::move(chunk));
        ++it;
        continue;
      }
      const std::uint64_t size = it->second.size();
      it = conn.reads.erase(it);
      send_ok(conn, id, {{"size", size}});
    } catch (const OpError& e) {
      it = conn.reads.erase(it);
      send_error(conn, id, e);
    }
  }
}

}  // namespace forkvm::agent
