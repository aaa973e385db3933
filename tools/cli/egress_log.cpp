#include "tools/cli/egress_log.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

#include "base/text.hpp"
#include "forkvm/errors.hpp"

namespace forkvm::cli {
namespace {

std::string utc_text(std::chrono::system_clock::time_point time) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms.count() % 1000));
  return text;
}

}  // namespace

std::string egress_event_json(const EgressEvent& event) {
  const nlohmann::json line = {
      {"time", utc_text(event.time)},   {"method", event.method},
      {"host", event.host},             {"port", event.port},
      {"address", event.address},       {"decision", event.allowed ? "allow" : "deny"},
      {"rule", event.rule},             {"status", event.status},
      {"bytes_up", event.bytes_up},     {"bytes_down", event.bytes_down},
      {"error", event.error}};
  // The proxy made every string printable; replace keeps a stray byte from failing the line.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

EgressLog::EgressLog(const std::string& path) : file_(std::fopen(path.c_str(), "ae")) {
  if (file_ == nullptr) {
    throw ConfigError("--egress-log: cannot open " + path + ": " + errno_text(errno));
  }
}

EgressLog::~EgressLog() { std::fclose(file_); }

void EgressLog::audit(const EgressEvent& event) {
  const std::string line = egress_event_json(event);
  std::lock_guard lock(mutex_);
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace forkvm::cli
