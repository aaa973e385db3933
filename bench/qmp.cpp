#include "bench/qmp.hpp"

#include <stdexcept>

namespace forkvm::bench {
namespace {

std::string shown(std::string_view line) {
  return std::string(line.substr(0, 200)) + (line.size() > 200 ? "..." : "");
}

}  // namespace

QmpMessage parse_qmp_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) throw std::runtime_error("QMP: not a JSON object: " + shown(line));
  const int keys = static_cast<int>(j.contains("QMP")) + static_cast<int>(j.contains("return")) +
                   static_cast<int>(j.contains("error")) + static_cast<int>(j.contains("event"));
  if (keys != 1) throw std::runtime_error("QMP: not a greeting, return, error or event: " + shown(line));
  QmpMessage m;
  if (j.contains("QMP")) {
    m.kind = QmpMessage::Kind::kGreeting;
    m.body = j.at("QMP");
  } else if (j.contains("return")) {
    m.kind = QmpMessage::Kind::kReturn;
    m.body = j.at("return");
  } else if (j.contains("error")) {
    m.kind = QmpMessage::Kind::kError;
    m.body = j.at("error");
    const auto& e = m.body;
    const std::string cls = e.is_object() && e.contains("class") && e["class"].is_string()
                                ? e["class"].get<std::string>() : "?";
    const std::string desc = e.is_object() && e.contains("desc") && e["desc"].is_string()
                                 ? e["desc"].get<std::string>() : "?";
    m.text = cls + ": " + desc;
  } else {
    m.kind = QmpMessage::Kind::kEvent;
    if (!j.at("event").is_string()) throw std::runtime_error("QMP: event name not a string: " + shown(line));
    m.text = j.at("event").get<std::string>();
    m.body = j.contains("data") ? j.at("data") : nlohmann::json();
  }
  return m;
}

std::string qmp_command(const std::string& command, const nlohmann::json& arguments) {
  nlohmann::json j = {{"execute", command}};
  if (!arguments.is_null()) {
    if (!arguments.is_object()) throw std::runtime_error("QMP: arguments of " + command + " must be an object");
    j["arguments"] = arguments;
  }
  return j.dump() + "\n";
}

std::string qmp_greeting_version(const nlohmann::json& greeting) {
  try {
    const auto& q = greeting.at("version").at("qemu");
    return std::to_string(q.at("major").get<int>()) + "." + std::to_string(q.at("minor").get<int>()) +
           "." + std::to_string(q.at("micro").get<int>());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("QMP: greeting without a version: ") + e.what());
  }
}

QmpRunState parse_query_status(const nlohmann::json& ret) {
  if (!ret.is_object() || !ret.contains("running") || !ret["running"].is_boolean() ||
      !ret.contains("status") || !ret["status"].is_string()) {
    throw std::runtime_error("QMP: query-status returned " + shown(ret.dump()));
  }
  return {ret["running"].get<bool>(), ret["status"].get<std::string>()};
}

std::string parse_migration_status(const nlohmann::json& ret) {
  if (!ret.is_object()) throw std::runtime_error("QMP: query-migrate returned " + shown(ret.dump()));
  if (!ret.contains("status")) return "";
  if (!ret["status"].is_string()) throw std::runtime_error("QMP: query-migrate status not a string");
  return ret["status"].get<std::string>();
}

}  // namespace forkvm::bench
