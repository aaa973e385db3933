// Builds the JSON headers of protocol v1 requests (contract/protocol/MESSAGES.md) after
// checking every field on the host, so that a request the agent would reject is never sent.
// Pure: no I/O. Throws OperationError (from_guest() false) with kInvalidArgument or kTooLarge.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "forkvm/agent_client.hpp"

namespace forkvm::sandbox {

/// Throws OperationError(kInvalidArgument) naming `op` unless `path` follows the path rules.
void check_path(const std::string& op, const std::string& path);

/// The exec request for argv (`shell` empty) or for a shell command (`argv` empty).
/// `wants_stdin`: the host will stream stdin frames.
nlohmann::json exec_request(const std::vector<std::string>& argv, const std::string& shell,
                            const ExecOptions& options, bool wants_stdin);
/// {"type":"read_file","path":...}, {"type":"stat",...}, {"type":"exists",...},
/// {"type":"list_dir",...}: the requests that carry only a path.
nlohmann::json path_request(std::string_view type, const std::string& path);
/// write_file with a mode (<= 07777).
nlohmann::json write_file_request(const std::string& path, uint32_t mode);
/// mkdir.
nlohmann::json mkdir_request(const std::string& path, bool parents, uint32_t mode);
/// remove.
nlohmann::json remove_request(const std::string& path, bool recursive);
/// rename.
nlohmann::json rename_request(const std::string& from, const std::string& to);
/// set_env (all keys and values checked first).
nlohmann::json set_env_request(const std::map<std::string, std::string>& env);
/// identity (the entropy travels as the payload); fills empty entropy from getrandom().
nlohmann::json identity_request(const GuestIdentity& identity, std::string* payload);
/// set_secret (the value travels as the payload; it must fit one frame).
nlohmann::json set_secret_request(const std::string& name, std::string_view value);

/// Parses an exec's terminal "exit" header into `result` (output fields untouched).
void parse_exit(const nlohmann::json& exit, ExecResult& result);
/// Parses a stat-like object (stat reply or list_dir entry).
FileStat parse_stat(const nlohmann::json& j);
/// How much of an agent's error message an OperationError shows (printable(), base/text.hpp).
inline constexpr size_t kMaxShownAgentMessage = 1024;
/// The OperationError for an "error" frame header about `op` / `path`; the agent's message and
/// an unknown code are made printable.
OperationError error_from_frame(const nlohmann::json& header, const std::string& op,
                                const std::string& path);

}  // namespace forkvm::sandbox
