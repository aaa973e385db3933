#include "sandbox/requests.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "base/text.hpp"
#include "contract/protocol/field_rules.hpp"
#include "contract/protocol/frame.hpp"
#include "contract/protocol/messages.hpp"

namespace forkvm::sandbox {
namespace proto = forkvm::protocol;
using nlohmann::json;

namespace {

[[noreturn]] void invalid(const std::string& op, const std::string& path, const std::string& why) {
  throw OperationError(ErrorKind::kInvalidArgument, op, path, why, std::nullopt, false);
}

void check_mode(const std::string& op, const std::string& path, uint32_t mode) {
  if (mode > 07777) invalid(op, path, "mode " + std::to_string(mode) + " is over 07777");
}

void check_env(const std::string& op, const std::map<std::string, std::string>& env) {
  for (const auto& [k, v] : env) {
    if (!proto::valid_env_key(k)) {
      invalid(op, "", "env key '" + k + "' does not match [A-Za-z_][A-Za-z0-9_]*");
    }
    if (!proto::valid_env_value(v)) {
      invalid(op, "", "the value of env key '" + k + "' contains a NUL or a newline");
    }
  }
}

bool has_nul(const std::string& s) { return s.find('\0') != std::string::npos; }

// Guest-controlled: every reply field is checked for its type before use.
[[noreturn]] void bad_reply(const std::string& what) {
  throw AgentProtocolError("malformed reply from the agent: " + what);
}

uint64_t u64_field(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return 0;
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0)) {
    bad_reply(std::string("'") + key + "' is not a non-negative integer");
  }
  return it->get<uint64_t>();
}

std::optional<int> opt_int_field(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) bad_reply(std::string("'") + key + "' is not an integer");
  const auto v = it->get<int64_t>();
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    bad_reply(std::string("'") + key + "' is out of range");
  }
  return static_cast<int>(v);
}

bool bool_field(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return false;
  if (!it->is_boolean()) bad_reply(std::string("'") + key + "' is not a boolean");
  return it->get<bool>();
}

std::chrono::milliseconds ms_field(const json& j, const char* key) {
  return std::chrono::milliseconds(static_cast<int64_t>(
      std::min<uint64_t>(u64_field(j, key), static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))));
}

}  // namespace

void check_path(const std::string& op, const std::string& path) {
  if (auto problem = proto::path_problem(path)) invalid(op, path.substr(0, 256), *problem);
}

json exec_request(const std::vector<std::string>& argv, const std::string& shell,
                  const ExecOptions& options, bool wants_stdin) {
  const std::string op(proto::msg::kExec);
  json j = {{"type", op}};
  if (shell.empty()) {
    if (argv.empty()) invalid(op, "", "argv is empty");
    if (argv.front().empty()) invalid(op, "", "argv[0] is empty");
    for (size_t i = 0; i < argv.size(); ++i) {
      if (has_nul(argv[i])) invalid(op, "", "argv[" + std::to_string(i) + "] contains a NUL byte");
    }
    j["argv"] = argv;
  } else {
    if (has_nul(shell)) invalid(op, "", "the shell command contains a NUL byte");
    j["shell"] = shell;
  }
  check_env(op, options.env);
  if (!options.env.empty()) j["env"] = options.env;
  if (!options.cwd.empty()) {
    if (auto problem = proto::path_problem(options.cwd)) invalid(op, "", "cwd: " + *problem);
    j["cwd"] = options.cwd;
  }
  if (options.timeout) {
    if (options.timeout->count() <= 0) invalid(op, "", "timeout must be positive");
    j["timeout_ms"] = options.timeout->count();
  }
  if (options.max_output_bytes == 0) invalid(op, "", "max_output_bytes must be positive");
  j["max_output_bytes"] = options.max_output_bytes;
  if (wants_stdin) j["stdin"] = true;
  return j;
}

json path_request(std::string_view type, const std::string& path) {
  check_path(std::string(type), path);
  return {{"type", type}, {"path", path}};
}

json write_file_request(const std::string& path, uint32_t mode) {
  const std::string op(proto::msg::kWriteFile);
  check_path(op, path);
  check_mode(op, path, mode);
  return {{"type", op}, {"path", path}, {"mode", mode}};
}

json mkdir_request(const std::string& path, bool parents, uint32_t mode) {
  const std::string op(proto::msg::kMkdir);
  check_path(op, path);
  check_mode(op, path, mode);
  return {{"type", op}, {"path", path}, {"parents", parents}, {"mode", mode}};
}

json remove_request(const std::string& path, bool recursive) {
  const std::string op(proto::msg::kRemove);
  check_path(op, path);
  return {{"type", op}, {"path", path}, {"recursive", recursive}};
}

json rename_request(const std::string& from, const std::string& to) {
  const std::string op(proto::msg::kRename);
  check_path(op, from);
  check_path(op, to);
  return {{"type", op}, {"from", from}, {"to", to}};
}

json set_env_request(const std::map<std::string, std::string>& env) {
  const std::string op(proto::msg::kSetEnv);
  check_env(op, env);
  return {{"type", op}, {"env", env}};
}

json identity_request(const GuestIdentity& identity, std::string* payload) {
  const std::string op(proto::msg::kIdentity);
  *payload = identity.entropy;
  if (payload->empty()) {
    payload->resize(64);
    if (::getrandom(payload->data(), payload->size(), 0) != static_cast<ssize_t>(payload->size())) {
      throw Error(std::string("getrandom: ") + errno_text(errno));
    }
  }
  if (payload->size() < 32 || payload->size() > 4096) {
    invalid(op, "", "the entropy is " + std::to_string(payload->size()) +
                        " bytes; the agent takes 32..4096");
  }
  json h = {{"type", op}};
  if (identity.wall_clock) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        identity.wall_clock->time_since_epoch())
                        .count();
    if (ns <= 0) invalid(op, "", "the wall clock is before 1970");
    h["wall_clock_ns"] = ns;
  }
  if (identity.hostname) {
    const std::string& name = *identity.hostname;
    if (!proto::valid_hostname(name)) invalid(op, "", "hostname '" + name.substr(0, 80) + "' is not 1..64 of [A-Za-z0-9.-]");
    h["hostname"] = name;
  }
  if (identity.mac) {
    const auto& [from, to] = *identity.mac;
    if (!proto::valid_unicast_mac(to)) {
      invalid(op, "", "the new MAC " + proto::format_mac(to) + " is not a unicast address");
    }
    h["mac"] = {{"from", proto::format_mac(from)}, {"to", proto::format_mac(to)}};
  }
  return h;
}

json set_secret_request(const std::string& name, std::string_view value) {
  const std::string op(proto::msg::kSetSecret);
  if (!proto::valid_secret_name(name)) {
    invalid(op, "", "secret name '" + name.substr(0, 300) +
                        "' does not match [A-Za-z0-9_-]+ (at most 255 bytes)");
  }
  if (value.size() > proto::Limits{}.max_payload_len) {
    throw OperationError(ErrorKind::kTooLarge, op, "",
                         "the secret is " + std::to_string(value.size()) +
                             " bytes, over the one-frame limit of " +
                             std::to_string(proto::Limits{}.max_payload_len),
                         std::nullopt, false);
  }
  return {{"type", op}, {"name", name}};
}

void parse_exit(const json& exit, ExecResult& result) {
  result.exit_code = opt_int_field(exit, "exit_code");
  result.signal = opt_int_field(exit, "signal");
  if (result.exit_code.has_value() == result.signal.has_value()) {
    bad_reply("exit frame must have exactly one of exit_code and signal");
  }
  result.timed_out = bool_field(exit, "timed_out");
  result.cancelled = bool_field(exit, "cancelled");
  result.duration = ms_field(exit, "duration_ms");
  result.stdout_truncated = bool_field(exit, "stdout_truncated");
  result.stderr_truncated = bool_field(exit, "stderr_truncated");
}

FileStat parse_stat(const json& j) {
  if (!j.is_object()) bad_reply("a stat entry is not an object");
  FileStat s;
  const auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string()) bad_reply("'kind' is missing");
  const auto& k = kind->get_ref<const std::string&>();
  s.kind = k == "file" ? FileKind::kFile
         : k == "dir" ? FileKind::kDirectory
         : k == "symlink" ? FileKind::kSymlink
                          : FileKind::kOther;
  s.size = u64_field(j, "size");
  s.mode = static_cast<uint32_t>(u64_field(j, "mode") & 07777);
  s.mtime = ms_field(j, "mtime_ms");
  return s;
}

OperationError error_from_frame(const json& header, const std::string& op,
                                const std::string& path) {
  // Agent-controlled: the code picks a kind from a fixed table; the message (up to the 64 KiB
  // header limit, any bytes) is kept made printable and short.
  std::string code = "internal";
  std::string message;
  if (auto it = header.find("code"); it != header.end() && it->is_string()) code = it->get<std::string>();
  if (auto it = header.find("message"); it != header.end() && it->is_string()) {
    message = printable(it->get_ref<const std::string&>(), kMaxShownAgentMessage);
  }
  std::optional<int> err;
  if (auto it = header.find("errno"); it != header.end() && it->is_number_integer()) {
    const auto v = it->get<int64_t>();
    if (v >= 0 && v <= 4095) err = static_cast<int>(v);
  }
  const ErrorKind kind = error_kind_from_code(code);
  if (kind == ErrorKind::kUnknown) message = "code '" + printable(code, 64) + "': " + message;
  return OperationError(kind, op, path, message, err, true);
}

}  // namespace forkvm::sandbox

namespace forkvm {

std::string ExecResult::outcome() const {
  const std::string how = exit_code ? "exit status " + std::to_string(*exit_code)
                          : signal  ? "killed by signal " + std::to_string(*signal)
                                    : std::string("no exit status");
  if (timed_out) return "timed out (" + how + ")";
  if (cancelled) return "cancelled (" + how + ")";
  return how;
}

}  // namespace forkvm
