// Fuzz target: a launch.json (`forkvm run --launch-plan`, tools/cli/launch_plan.hpp
// parse_launch_plan): size limit, JSON parse, the single app, its entrypoint command, env
// objects and working directories. A plan that parses is turned into the exec request the host
// would send (sandbox/requests.hpp exec_request, which checks the protocol's field rules:
// LaunchPlanError and OperationError are the answers to bad input).
#include <cstdint>
#include <string_view>

#include "forkvm/agent_client.hpp"
#include "forkvm/sandbox_errors.hpp"
#include "sandbox/requests.hpp"
#include "tools/cli/launch_plan.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  forkvm::cli::LaunchPlan plan;
  try {
    plan = forkvm::cli::parse_launch_plan(text);
  } catch (const forkvm::cli::LaunchPlanError&) {
    return 0;
  }
  if (plan.argv.empty() || plan.argv[0].empty()) __builtin_trap();  // its own promise
  forkvm::ExecOptions options;
  options.env = plan.env;
  options.cwd = plan.working_dir;
  try {
    (void)forkvm::sandbox::exec_request(plan.argv, "", options, false);
  } catch (const forkvm::OperationError&) {
  }
  return 0;
}
