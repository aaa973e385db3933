// unit tier: reading `forkvm run --launch-plan` files (tools/cli/launch_plan.cpp).
#include <gtest/gtest.h>

#include "tools/cli/launch_plan.hpp"

namespace forkvm::cli {
namespace {

std::string error_of(std::string_view text) {
  try {
    parse_launch_plan(text);
  } catch (const LaunchPlanError& e) {
    return e.what();
  }
  return "no error";
}

TEST(LaunchPlan, FullPlan) {
  const LaunchPlan p = parse_launch_plan(R"({
    "version": 1,
    "apps": [{
      "name": "web",
      "working_dir": "/srv",
      "env": {"A": "app", "B": "app"},
      "entrypoint": {"command": ["python3", "-m", "http.server", "8080"],
                     "working_dir": "/srv/app",
                     "env": {"B": "entry", "C": "entry"}},
      "ports": [8080]
    }]})");
  EXPECT_EQ(p.argv, (std::vector<std::string>{"python3", "-m", "http.server", "8080"}));
  EXPECT_EQ(p.working_dir, "/srv/app");
  EXPECT_EQ(p.env, (std::map<std::string, std::string>{{"A", "app"}, {"B", "entry"}, {"C", "entry"}}));
}

TEST(LaunchPlan, AppWorkingDirIsTheFallbackAndEverythingElseIsOptional) {
  LaunchPlan p = parse_launch_plan(R"({"apps":[{"working_dir":"/w","entrypoint":{"command":["ls"]}}]})");
  EXPECT_EQ(p.working_dir, "/w");
  p = parse_launch_plan(R"({"apps":[{"entrypoint":{"command":["ls"],"env":null}}]})");
  EXPECT_EQ(p.working_dir, "");
  EXPECT_TRUE(p.env.empty());
}

TEST(LaunchPlan, RejectionsSayWhy) {
  EXPECT_NE(error_of(R"({"apps":[]})").find("\"apps\" is empty"), std::string::npos);
  EXPECT_NE(error_of(R"({"apps":[{"entrypoint":{"command":["a"]}},{"entrypoint":{"command":["b"]}}]})")
                .find("has 2 apps"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"apps":[{"entrypoint":{"command":[]}}]})").find("command is empty"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"apps":[{"entrypoint":{"command":[""]}}]})").find("is empty"), std::string::npos);
  EXPECT_NE(error_of(R"({"apps":[{"entrypoint":{"command":"ls -l"}}]})").find("array of strings"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"apps":[{"entrypoint":{"command":["ls", 1]}}]})").find("command[1]"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"apps":[{}]})").find("no \"entrypoint\""), std::string::npos);
  EXPECT_NE(error_of(R"({"services":[]})").find("no \"apps\" array"), std::string::npos);
  EXPECT_NE(error_of(R"([1,2])").find("JSON object"), std::string::npos);
  EXPECT_NE(error_of(R"({"apps": [)").find("not valid JSON"), std::string::npos);
  // A number too large for a double is nlohmann's out_of_range, not a parse_error (fuzz finding).
  EXPECT_NE(error_of(R"({"apps": [], "x": 4E4444544})").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"apps":[{"env":{"A":1},"entrypoint":{"command":["ls"]}}]})").find("apps[0].env.A"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"apps":[{"entrypoint":{"command":["ls"],"working_dir":"rel"}}]})")
                .find("absolute"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kMaxLaunchPlanBytes + 1, ' ')).find("over the limit"), std::string::npos);
}

TEST(LaunchPlan, MissingFileIsNamed) {
  try {
    load_launch_plan("/nonexistent/launch.json");
    FAIL();
  } catch (const LaunchPlanError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/launch.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace forkvm::cli
