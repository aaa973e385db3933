// QEMU's machine protocol (QMP) as `forkvm-bench restore` speaks it to its QEMU reference: one
// JSON object per line each way. This file holds the pure part (building command lines,
// classifying what QEMU sends, reading the two query results the benchmark needs), so that it is
// unit-tested without QEMU; bench/qemu_restore.cpp owns the socket.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace forkvm::bench {

/// One line QEMU sent on its QMP socket.
struct QmpMessage {
  enum class Kind {
    kGreeting,  ///< {"QMP": {"version": ..., "capabilities": [...]}}: the first line
    kReturn,    ///< {"return": ...}: a command succeeded
    kError,     ///< {"error": {"class": ..., "desc": ...}}: a command failed
    kEvent,     ///< {"event": NAME, "data": ..., "timestamp": ...}: asynchronous
  };
  Kind kind = Kind::kReturn;
  /// kEvent: the event's name (e.g. "RESUME"); kError: "<class>: <desc>"; else empty.
  std::string text;
  /// kGreeting: the "QMP" object; kReturn: the "return" value; kEvent: "data" (null when
  /// absent); kError: the "error" object.
  nlohmann::json body;
};

/// Classifies one line (without or with its trailing newline). Throws std::runtime_error when
/// the line is not a JSON object with exactly one of the keys above (e.g. a truncated line).
QmpMessage parse_qmp_line(std::string_view line);

/// The line that runs `command` ("{"execute": ...[, "arguments": ...]}\n"); `arguments` null
/// for none, else an object.
std::string qmp_command(const std::string& command, const nlohmann::json& arguments = nullptr);

/// "7.2.22" from a greeting's QMP object (its version.qemu micro/minor/major). Throws
/// std::runtime_error when the fields are missing.
std::string qmp_greeting_version(const nlohmann::json& greeting);

/// What `query-status` returned: whether the guest's vCPUs run, and QEMU's run state
/// ("running", "inmigrate", "paused", "postmigrate", ...). Throws std::runtime_error when the
/// return value does not have that shape.
struct QmpRunState {
  bool running = false;
  std::string status;
};
QmpRunState parse_query_status(const nlohmann::json& ret);

/// The "status" of a `query-migrate` return ("setup", "active", "completed", "failed", ...);
/// "" before a migration started (QEMU then returns an empty object). Throws
/// std::runtime_error when `ret` is not an object.
std::string parse_migration_status(const nlohmann::json& ret);

}  // namespace forkvm::bench
