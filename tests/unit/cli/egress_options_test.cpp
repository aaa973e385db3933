// forkvm run's network options (tools/cli/egress_options.hpp) and the --egress-log line: what
// each accepts, what it refuses, and that a secret's value never comes from argv.
#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <string>

#include "tests/support/temp_dir.hpp"
#include "tools/cli/args.hpp"
#include "tools/cli/egress_options.hpp"

namespace forkvm::cli {
namespace {

std::optional<std::string> no_env(const std::string&) { return std::nullopt; }

TEST(CliEgress, HostRulesWithAndWithoutPorts) {
  EgressRule r = parse_host_rule("--allow-host", "pypi.org", EgressAction::kAllow);
  EXPECT_EQ(r.host, "pypi.org");
  EXPECT_TRUE(r.ports.empty());
  r = parse_host_rule("--deny-host", "*.example.com:443", EgressAction::kDeny);
  EXPECT_EQ(r.action, EgressAction::kDeny);
  EXPECT_EQ(r.host, "*.example.com");
  ASSERT_EQ(r.ports.size(), 1u);
  EXPECT_EQ(r.ports[0].first, 443);
  r = parse_host_rule("--allow-host", "[::1]:8080", EgressAction::kAllow);
  EXPECT_EQ(r.host, "::1");
  EXPECT_EQ(r.ports[0].second, 8080);
  r = parse_host_rule("--allow-host", "fd00::/8", EgressAction::kAllow);  // no port: as is
  EXPECT_EQ(r.host, "fd00::/8");
  r = parse_host_rule("--allow-host", "10.0.0.0/8:5432", EgressAction::kAllow);
  EXPECT_EQ(r.host, "10.0.0.0/8");
  for (const char* bad : {"", ":80", "a:", "a:0", "a:65536", "a:x", "[::1", "[::1]x", "[::1]:"}) {
    EXPECT_THROW(parse_host_rule("--allow-host", bad, EgressAction::kAllow), UsageError) << bad;
  }
}

TEST(CliEgress, SecretsComeFromTheEnvironmentOrAFile) {
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "API_KEY") return std::string("from-env");
    return std::nullopt;
  };
  SecretBinding b = parse_secret_option("API_KEY@api.example.com:Authorization", env);
  EXPECT_EQ(b.name, "API_KEY");
  ASSERT_EQ(b.hosts.size(), 1u);
  EXPECT_EQ(b.hosts[0], "api.example.com");
  EXPECT_EQ(b.header, "Authorization");
  EXPECT_EQ(b.value, "from-env");
  test::TempDir dir;
  const std::string file = dir / "token";
  std::ofstream(file) << "from-file\n";
  b = parse_secret_option("TOKEN@*.example.com,file=" + file, no_env);
  EXPECT_EQ(b.value, "from-file");  // the trailing newline is not part of it
  EXPECT_TRUE(b.header.empty());
  // Missing value, malformed specs, an unreadable file.
  for (const char* bad : {"TOKEN@example.com", "TOKEN", "@example.com", "TOKEN@",
                          "TOKEN@example.com:", "TOKEN@example.com,bogus=1",
                          "TOKEN@example.com,file=", "TOKEN@example.com,file=/nonexistent/x"}) {
    EXPECT_THROW(parse_secret_option(bad, no_env), UsageError) << bad;
  }
}

TEST(CliEgress, PublishedPorts) {
  EXPECT_EQ(parse_publish_option("8080:80"), (PublishedPort{8080, "", 80}));
  EXPECT_EQ(parse_publish_option("0:8000"), (PublishedPort{0, "", 8000}));
  EXPECT_EQ(parse_publish_option("unix:/run/x.sock:8000"), (PublishedPort{0, "/run/x.sock", 8000}));
  EXPECT_EQ(parse_publish_option("unix:/tmp/a:b.sock:80"), (PublishedPort{0, "/tmp/a:b.sock", 80}));
  for (const char* bad : {"", "8080", "8080:", ":80", "8080:0", "70000:80", "a:b", "1:2:3",
                          "unix:", "unix::80", "unix:/x.sock", "unix:/x.sock:0", "unix:/x:y"}) {
    EXPECT_THROW(parse_publish_option(bad), UsageError) << bad;
  }
}

}  // namespace
}  // namespace forkvm::cli
