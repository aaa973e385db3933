#include "tools/cli/launch_plan.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/text.hpp"

namespace forkvm::cli {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& what) { throw LaunchPlanError("launch plan: " + what); }

std::map<std::string, std::string> env_object(const json& parent, const char* key,
                                              const std::string& where) {
  std::map<std::string, std::string> env;
  const auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) return env;
  if (!it->is_object()) fail(where + "." + key + " must be an object of strings");
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) fail(where + "." + key + "." + k + " must be a string");
    env[k] = v.get<std::string>();
  }
  return env;
}

std::string working_dir(const json& parent, const std::string& where) {
  const auto it = parent.find("working_dir");
  if (it == parent.end() || it->is_null()) return {};
  if (!it->is_string()) fail(where + ".working_dir must be a string");
  std::string dir = it->get<std::string>();
  if (dir.empty() || dir.front() != '/') {
    fail(where + ".working_dir must be an absolute path, not '" + dir + "'");
  }
  return dir;
}

}  // namespace

LaunchPlan parse_launch_plan(std::string_view text) {
  if (text.size() > kMaxLaunchPlanBytes) {
    fail("the file is " + std::to_string(text.size()) + " bytes, over the limit of " +
         std::to_string(kMaxLaunchPlanBytes));
  }
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number JSON allows but a double cannot hold
    // ("1E400"; found by tests/fuzz fuzz_launch_plan).
    fail(std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) fail("the top level must be a JSON object");
  const auto apps = doc.find("apps");
  if (apps == doc.end() || !apps->is_array()) fail("no \"apps\" array");
  if (apps->empty()) fail("\"apps\" is empty: there is no app to run");
  if (apps->size() > 1) {
    fail("\"apps\" has " + std::to_string(apps->size()) +
         " apps; forkvm run runs exactly one (a multi-app workload needs an orchestrator)");
  }
  const json& app = (*apps)[0];
  if (!app.is_object()) fail("apps[0] must be an object");
  const auto ep = app.find("entrypoint");
  if (ep == app.end() || !ep->is_object()) fail("apps[0] has no \"entrypoint\" object");
  const auto cmd = ep->find("command");
  if (cmd == ep->end() || !cmd->is_array()) {
    fail("apps[0].entrypoint.command must be an array of strings (an argv)");
  }
  if (cmd->empty()) fail("apps[0].entrypoint.command is empty: there is no command to run");
  LaunchPlan plan;
  for (size_t i = 0; i < cmd->size(); ++i) {
    if (!(*cmd)[i].is_string()) {
      fail("apps[0].entrypoint.command[" + std::to_string(i) + "] must be a string");
    }
    plan.argv.push_back((*cmd)[i].get<std::string>());
  }
  if (plan.argv.front().empty()) fail("apps[0].entrypoint.command[0] (the program) is empty");
  plan.working_dir = working_dir(*ep, "apps[0].entrypoint");
  if (plan.working_dir.empty()) plan.working_dir = working_dir(app, "apps[0]");
  plan.env = env_object(app, "env", "apps[0]");
  for (auto& [k, v] : env_object(*ep, "env", "apps[0].entrypoint")) plan.env[k] = v;
  return plan;
}

LaunchPlan load_launch_plan(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw LaunchPlanError("launch plan " + path + ": " + errno_text(errno));
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxLaunchPlanBytes) break;
  }
  if (in.bad()) throw LaunchPlanError("launch plan " + path + ": read error");
  try {
    return parse_launch_plan(text);
  } catch (const LaunchPlanError& e) {
    throw LaunchPlanError(path + ": " + e.what());
  }
}

}  // namespace forkvm::cli
