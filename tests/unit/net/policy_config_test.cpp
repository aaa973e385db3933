// unit tier: CompiledPolicy refuses every malformed rule, secret and limit with a ConfigError
// naming the rule (or secret) index and the problem, and never the secret's value; what it
// accepts is described in one normalized line (forkvm::describe, rule_text).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "forkvm/errors.hpp"
#include "net/egress_rules.hpp"
#include "tests/unit/net/policy_test_util.hpp"

namespace forkvm::net {
namespace {

using namespace policy_test;

/// The ConfigError message of compiling `p`, or "" (a failure) when it compiles.
std::string config_error(EgressPolicy p) {
  try {
    CompiledPolicy compiled(std::move(p));
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "the policy compiled";
  return "";
}

std::string rule_error(EgressRule bad) {
  EgressPolicy p;
  p.rules = {allow("pypi.org"), deny("*.example.com"), std::move(bad)};
  return config_error(std::move(p));
}

std::string secret_error(std::vector<SecretBinding> secrets) {
  EgressPolicy p;
  p.secrets = std::move(secrets);
  return config_error(std::move(p));
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) \
  << "\"" << (text) << "\" lacks \"" << (part) << "\""

TEST(PolicyConfig, BadHostPatternsNameTheRuleIndex) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty host"},
      {"*.", "nothing after \"*.\""},
      {"*..", "nothing after \"*.\""},
      {"*.a..b", "empty label"},
      {"a.*.com", "'*' is allowed only"},
      {"**", "'*' is allowed only"},
      {"*foo.com", "'*' is allowed only"},
      {"foo*.com", "'*' is allowed only"},
      {"*.*.com", "not allowed"},
      {"*.10.0.0.1", "is an address, not a name"},
      {"*.127.1", "numeric host"},
      {"127.1", "numeric host"},
      {"0x7f.0.0.1", "numeric host"},
      {"2130706433", "numeric host"},
      {"017.0.0.1", "numeric host"},
      {"bad-.example", "'-'"},
      {"exa mple.com", "control, space or non-ASCII"},
      {"pypi.org\n", "control character"},
      {"pypi.org\r", "control character"},
      {std::string("pypi.org\0", 9), "control character"},
      {"[::1]", "brackets"},
      {"fe80::1%eth0", "zone id"},
      {"example.com:443", "not an IPv6 address"},
      {"http://example.com", "not an IP address before '/'"},
  };
  for (const auto& [host, problem] : cases) {
    const std::string error = rule_error(allow(host));
    EXPECT_CONTAINS(error, "egress rule 2: host ");
    EXPECT_CONTAINS(error, problem);
  }
}

TEST(PolicyConfig, BadCidrBlocks) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"10.0.0.0/33", "prefix length 33 out of range (0..32)"},
      {"::/129", "prefix length 129 out of range (0..128)"},
      {"10.0.0.0/999", "prefix length 999 out of range"},
      {"10.0.0.0/1000", "bad prefix length"},
      {"10.0.0.0/08", "bad prefix length"},
      {"10.0.0.0/", "bad prefix length"},
      {"10.0.0.0/-1", "bad prefix length"},
      {"10.0.0.0/+8", "bad prefix length"},
      {"10.0.0.0/8/8", "bad prefix length"},
      {"10.0.0.0/ 8", "bad prefix length"},
      {"10.0.0.1/8", "host bits set in \"10.0.0.1/8\" (the block is 10.0.0.0/8)"},
      {"10.128.0.0/8", "host bits set"},
      {"fd00::1/8", "host bits set in \"fd00::1/8\" (the block is fd00::/8)"},
      {"10.1/8", "not an IP address before '/'"},
      {"example.com/8", "not an IP address before '/'"},
      {"/8", "not an IP address before '/'"},
      {"[fd00::]/8", "not an IP address before '/'"},
  };
  for (const auto& [host, problem] : cases) {
    const std::string error = rule_error(deny(host));
    EXPECT_CONTAINS(error, "egress rule 2: ");
    EXPECT_CONTAINS(error, problem);
  }
}

TEST(PolicyConfig, BadPortsMethodsAndPaths) {
  EXPECT_EQ(rule_error(allow("a.com", {{0, 80}})), "egress rule 2: port 0 in port range 0-80");
  EXPECT_EQ(rule_error(allow("a.com", {{80, 0}})), "egress rule 2: port 0 in port range 80-0");
  EXPECT_EQ(rule_error(allow("a.com", {{0, 0}})), "egress rule 2: port 0 in port range 0-0");
  EXPECT_EQ(rule_error(allow("a.com", {{443, 443}, {90, 80}})),
            "egress rule 2: inverted port range 90-80");
  for (const char* method : {"get", "Get", "", "GE T", "GET\r\n", "GET/1", "G\xc3\x89T"}) {
    EXPECT_CONTAINS(rule_error(allow("a.com", {}, {"GET", method})),
                    "is not an upper-case HTTP token");
  }
  EXPECT_CONTAINS(rule_error(allow("a.com", {}, {"CONNECT"})),
                  "method CONNECT: rules with methods never match a tunnel");
  for (const char* path : {"simple/", "*", "/a b", "/a\n", "/a\x7f", "/caf\xc3\xa9"}) {
    EXPECT_CONTAINS(rule_error(allow("a.com", {}, {}, path)), "must start with '/'");
  }
  EXPECT_CONTAINS(rule_error(allow("a.com", {}, {}, "/a\n")), "\"/a\\x0a\"");
}

TEST(PolicyConfig, EdgeValuesThatAreAccepted) {
  EgressPolicy p;
  p.rules = {allow("0.0.0.0/0"), allow("::/0"), allow("*.com"), allow("*"),
             allow("a.com", {{1, 65535}, {443, 443}}), allow("a.com", {}, {"M-SEARCH", "GET"}),
             allow("a.com", {}, {}, "/"), allow("_srv.a.com"), allow("10.0.0.0/32"),
             allow("::ffff:10.0.0.0/104")};
  const CompiledPolicy compiled(std::move(p));
  EXPECT_EQ(compiled.rule_count(), 10u);
  EXPECT_EQ(compiled.rule_text(8), "rule 8: allow 10.0.0.0");
  EXPECT_EQ(compiled.rule_text(9), "rule 9: allow 10.0.0.0/8");  // mapped blocks are IPv4
  EXPECT_THROW(static_cast<void>(compiled.rule_text(10)), std::out_of_range);
}

TEST(PolicyConfig, RuleTextIsTheNormalizedDescription) {
  EgressPolicy p;
  p.rules = {allow("PyPI.ORG."), deny("*.GitHub.com", {{22, 22}, {8000, 8080}}),
             allow("2001:DB8:0::1", {}, {"GET", "HEAD"}, "/simple/")};
  const CompiledPolicy compiled(std::move(p));
  EXPECT_EQ(compiled.rule_text(0), "rule 0: allow pypi.org");
  EXPECT_EQ(compiled.rule_text(1), "rule 1: deny *.github.com ports 22,8000-8080");
  EXPECT_EQ(compiled.rule_text(2), "rule 2: allow 2001:db8::1 methods GET,HEAD path /simple/");
}

TEST(PolicyConfig, DescribeWritesOneSafeLine) {
  EXPECT_EQ(describe(allow("*.pypi.org", {{443, 443}}, {"GET"}, "/simple/")),
            "allow *.pypi.org ports 443 methods GET path /simple/");
  EXPECT_EQ(describe(deny("10.0.0.0/8")), "deny 10.0.0.0/8");
  EXPECT_EQ(describe(allow("")), "allow \"\"");
  EXPECT_EQ(describe(allow("a\nb c", {}, {"G T"}, "/x\x1b[2J")),
            "allow a\\x0ab\\x20c methods G\\x20T path /x\\x1b[2J");
}

TEST(PolicyConfig, BadLimits) {
  const auto limit_error = [](auto mutate) {
    EgressPolicy p;
    mutate(p.limits);
    return config_error(std::move(p));
  };
  EXPECT_EQ(limit_error([](EgressLimits& l) { l.max_connections = 0; }),
            "egress limits: max_connections must be nonzero");
  EXPECT_EQ(limit_error([](EgressLimits& l) { l.max_header_bytes = 0; }),
            "egress limits: max_header_bytes must be nonzero");
  EXPECT_EQ(limit_error([](EgressLimits& l) { l.max_bytes_per_connection = 0; }),
            "egress limits: max_bytes_per_connection must be nonzero");
  EXPECT_EQ(limit_error([](EgressLimits& l) { l.idle_timeout = {}; }),
            "egress limits: idle_timeout must be nonzero");
  EXPECT_EQ(limit_error([](EgressLimits& l) { l.total_timeout = std::chrono::milliseconds(-1); }),
            "egress limits: total_timeout must be nonzero");
  EXPECT_EQ(limit_error([](EgressLimits& l) { l.connect_timeout = {}; }),
            "egress limits: connect_timeout must be nonzero");
  const CompiledPolicy defaults{EgressPolicy{}};
  EXPECT_EQ(defaults.limits().max_connections, EgressLimits{}.max_connections);
}

TEST(PolicyConfig, BadSecretNames) {
  const std::string l64(64, 'A');
  for (const std::string& name : {std::string(), std::string("1ABC"), std::string("A-B"),
                                  std::string("A B"), std::string("A=B"), l64 + "A"}) {
    EXPECT_CONTAINS(secret_error({secret("OK", {"a.com"}), secret(name, {"a.com"})}),
                    "egress secret 1 (");
    EXPECT_CONTAINS(secret_error({secret(name, {"a.com"})}),
                    "the name must be 1..64 of [A-Za-z0-9_], not starting with a digit");
  }
  EXPECT_EQ(secret_error({secret("A\nB", {"a.com"})}),
            "egress secret 0 (A\\x0aB): the name must be 1..64 of [A-Za-z0-9_], not starting "
            "with a digit");
  EXPECT_EQ(secret_error({secret("TOKEN", {"a.com"}), secret("TOKEN", {"b.com"})}),
            "egress secret 1 (TOKEN): the name repeats secret 0 (TOKEN)");
  EgressPolicy fine;
  fine.secrets = {secret(l64, {"a.com"}), secret("_x9", {"a.com"}), secret("token", {"a.com"}),
                  secret("TOKEN", {"a.com"})};
  EXPECT_EQ(CompiledPolicy(std::move(fine)).placeholders().size(), 4u);
}

TEST(PolicyConfig, BadSecretHosts) {
  EXPECT_EQ(secret_error({secret("T", {})}),
            "egress secret 0 (T): no hosts (the value would never be sent)");
  for (const char* host : {"*", "10.0.0.1", "::1", "10.0.0.0/8"}) {
    EXPECT_CONTAINS(secret_error({secret("T", {"api.github.com", host})}),
                    "must be a name or \"*.suffix\" (not \"*\" or an address)");
  }
  EXPECT_CONTAINS(secret_error({secret("T", {""})}), "empty host");
  EXPECT_CONTAINS(secret_error({secret("T", {"*."})}), "nothing after");
  EXPECT_CONTAINS(secret_error({secret("T", {"127.1"})}), "numeric host");
  EXPECT_CONTAINS(secret_error({secret("T", {"a.com\r\n"})}), "control character");
}

TEST(PolicyConfig, BadSecretHeaders) {
  for (const char* header : {"Bad Header", "X:Y", "X\r\nY", "Authorization:"}) {
    EXPECT_CONTAINS(secret_error({secret("T", {"a.com"}, "v", header)}),
                    "is not an HTTP token");
  }
  for (const char* header : {"Host", "content-length", "Transfer-Encoding", "CONNECTION",
                             "Upgrade", "TE", "Trailer", "Keep-Alive", "Proxy-Connection"}) {
    EXPECT_CONTAINS(secret_error({secret("T", {"a.com"}, "v", header)}),
                    "is written by the proxy, not by secrets");
  }
  // Two secrets may set one header for different hosts, not for overlapping ones.
  EgressPolicy fine;
  fine.secrets = {secret("GH", {"api.github.com"}, "a", "Authorization"),
                  secret("PYPI", {"upload.pypi.org"}, "b", "authorization"),
                  secret("OTHER", {"*.github.io"}, "c", "Authorization")};
  EXPECT_NO_THROW(CompiledPolicy(std::move(fine)));
  const std::vector<std::pair<std::string, std::string>> overlapping = {
      {"api.github.com", "api.github.com"}, {"api.github.com", "*.github.com"},
      {"*.github.com", "api.github.com"},   {"*.github.com", "*.api.github.com"},
      {"*.api.github.com", "*.github.com"}, {"*.github.com", "*.github.com"}};
  for (const auto& [a, b] : overlapping) {
    EXPECT_EQ(secret_error({secret("A", {"x.org", a}, "1", "Authorization"),
                            secret("B", {b}, "2", "AUTHORIZATION")}),
              "egress secret 1 (B): header AUTHORIZATION is also set by secret 0 (A) for an "
              "overlapping host")
        << a << " " << b;
  }
  EgressPolicy disjoint;
  disjoint.secrets = {secret("A", {"*.github.com"}, "1", "Authorization"),
                      secret("B", {"github.com", "*.hub.com", "xgithub.com"}, "2",
                             "Authorization")};
  EXPECT_NO_THROW(CompiledPolicy(std::move(disjoint)));
}

TEST(PolicyConfig, BadSecretValuesAndPlaceholdersNeverShowTheValue) {
  for (const std::string& value : {std::string("s3cr3t\r"), std::string("s3cr3t\nX: y"),
                                   std::string("s3cr3t\0", 7)}) {
    const std::string error = secret_error({secret("T", {"a.com"}, value)});
    EXPECT_EQ(error, "egress secret 0 (T): the value holds CR, LF or NUL");
    EXPECT_EQ(error.find("s3cr3t"), std::string::npos);
  }
  for (const std::string& placeholder : {std::string("ph\r"), std::string("ph\n"),
                                         std::string("ph\0", 3)}) {
    EXPECT_EQ(secret_error({secret("T", {"a.com"}, "s3cr3t", "", placeholder)}),
              "egress secret 0 (T): the placeholder holds CR, LF or NUL");
  }
  EXPECT_EQ(secret_error({secret("A", {"a.com"}),
                          secret("B", {"b.com"}, "v", "", "forkvm-secret-A")}),
            "egress secret 1 (B): the placeholder repeats secret 0 (A)");
  EXPECT_EQ(secret_error({secret("A", {"a.com"}, "v", "", "same"),
                          secret("B", {"b.com"}, "v", "", "same")}),
            "egress secret 1 (B): the placeholder repeats secret 0 (A)");
}

TEST(PolicyConfig, PlaceholdersDefaultToForkvmSecretName) {
  EgressPolicy p;
  p.secrets = {secret("GITHUB_TOKEN", {"api.github.com"}),
               secret("PYPI", {"upload.pypi.org"}, "v", "", "pypi-placeholder")};
  const CompiledPolicy compiled(std::move(p));
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"GITHUB_TOKEN", "forkvm-secret-GITHUB_TOKEN"}, {"PYPI", "pypi-placeholder"}};
  EXPECT_EQ(compiled.placeholders(), expected);
}

}  // namespace
}  // namespace forkvm::net
