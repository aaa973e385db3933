// Reads the command of `forkvm run --launch-plan FILE` from a launch.json, the workload
// description that Firecracker-based operators (mvmforge's launch.json, as run by
// `mvmctl exec`) hand to a microVM:
//
//   {"apps": [{"name": "web",
//              "working_dir": "/srv",                 // optional, app default
//              "env": {"K": "V"},                     // optional, app env
//              "entrypoint": {"command": ["python3", "-m", "http.server"],   // required argv
//                             "working_dir": "/srv/app",                    // optional, wins
//                             "env": {"K": "V2"}}}]}                         // optional, wins
//
// Accepted: exactly one app (a single-app workload; orchestrating several is an operator's
// job, not `forkvm run`'s), a non-empty `entrypoint.command` array of strings whose first
// element is non-empty, string-valued env objects, absolute working dirs. Keys this reader
// does not use are ignored. Anything else is a LaunchPlanError naming the offending field.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace forkvm::cli {

/// A launch.json that cannot be run; the message says which field is wrong and why.
class LaunchPlanError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The command a launch plan describes.
struct LaunchPlan {
  /// apps[0].entrypoint.command.
  std::vector<std::string> argv;
  /// apps[0].entrypoint.working_dir, else apps[0].working_dir, else empty.
  std::string working_dir;
  /// apps[0].env overridden key by key by apps[0].entrypoint.env.
  std::map<std::string, std::string> env;
};

/// Largest launch.json accepted (checked before parsing).
inline constexpr size_t kMaxLaunchPlanBytes = 1 << 20;

/// Parses launch.json text. Throws LaunchPlanError.
LaunchPlan parse_launch_plan(std::string_view json_text);

/// Reads and parses a launch.json file. Throws LaunchPlanError (also for an unreadable file).
LaunchPlan load_launch_plan(const std::string& path);

}  // namespace forkvm::cli
