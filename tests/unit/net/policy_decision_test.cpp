// unit tier: the decisions of a CompiledPolicy, as the proxy asks for them: by name before DNS
// (decide_by_name) and by the address connected to (decide). First match wins; names, "*.x",
// "*", ports, methods and paths; IP literals and CIDR blocks; special addresses reachable only
// through IP/CIDR allow rules (DNS rebinding onto 10.x, 127.x, the metadata address, ::1 and
// their IPv6 forms is refused with a reason).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "net/egress_rules.hpp"
#include "net/request_path.hpp"
#include "tests/unit/net/policy_test_util.hpp"

namespace forkvm::net {
namespace {

using namespace policy_test;

constexpr const char* kDefaultDeny = "no rule matches (default deny)";

/// decide() for a CONNECT to host:port that resolved to `address`.
Decision connect_to(const CompiledPolicy& p, const char* host, uint16_t port,
                          const char* address) {
  return p.decide(target(host, port), ip(address));
}

/// decide() for a plain HTTP request.
Decision http_to(const CompiledPolicy& p, const char* method, const char* host,
                       const char* path, const char* address = "93.184.216.34") {
  return p.decide(target(host, 80, method, path), ip(address));
}

void expect_allowed(const Decision& d, int rule, const std::string& text) {
  EXPECT_TRUE(d.allowed) << d.text;
  EXPECT_EQ(d.rule, rule) << d.text;
  EXPECT_EQ(d.text, text);
}

void expect_denied(const Decision& d, int rule, const std::string& text) {
  EXPECT_FALSE(d.allowed) << d.text;
  EXPECT_EQ(d.rule, rule) << d.text;
  EXPECT_EQ(d.text, text);
}

TEST(PolicyDecision, ExactNames) {
  const auto p = policy({allow("pypi.org")});
  expect_allowed(connect_to(p, "pypi.org", 443, "151.101.0.223"), 0, "rule 0: allow pypi.org");
  for (const char* other : {"files.pypi.org", "pypi.org.evil.com", "evilpypi.org", "pypi.com"}) {
    expect_denied(connect_to(p, other, 443, "151.101.0.223"), -1, kDefaultDeny);
  }
}

TEST(PolicyDecision, WildcardMatchesBelowTheSuffixNotTheApex) {
  const auto p = policy({allow("*.github.com")});
  for (const char* host : {"api.github.com", "a.b.github.com", "API.GitHub.com."}) {
    expect_allowed(connect_to(p, host, 443, "140.82.112.5"), 0, "rule 0: allow *.github.com");
  }
  for (const char* host : {"github.com", "xgithub.com", "github.com.evil", "api.github.co"}) {
    expect_denied(connect_to(p, host, 443, "140.82.112.5"), -1, kDefaultDeny);
  }
}

TEST(PolicyDecision, StarMatchesEveryNameAndPublicLiteralsOnly) {
  const auto p = policy({allow("*")});
  expect_allowed(connect_to(p, "example.com", 443, "93.184.216.34"), 0, "rule 0: allow *");
  expect_allowed(connect_to(p, "8.8.8.8", 53, "8.8.8.8"), 0, "rule 0: allow *");
  expect_allowed(connect_to(p, "2606:4700::1111", 443, "2606:4700::1111"), 0, "rule 0: allow *");
  expect_denied(connect_to(p, "10.0.0.1", 80, "10.0.0.1"), -1,
                "10.0.0.1 is a special address (private), which only an IP/CIDR rule can allow");
  expect_denied(connect_to(p, "::1", 80, "::1"), -1,
                "::1 is a special address (loopback), which only an IP/CIDR rule can allow");
  expect_denied(connect_to(p, "::ffff:169.254.169.254", 80, "::ffff:169.254.169.254"), -1,
                "169.254.169.254 is a special address (metadata), which only an IP/CIDR rule "
                "can allow");
}

TEST(PolicyDecision, CaseAndTrailingDotsAreNormalizedOnBothSides) {
  const auto p = policy({deny("EVIL.example."), allow("PyPI.ORG.")});
  expect_allowed(connect_to(p, "pypi.org", 443, "151.101.0.223"), 1, "rule 1: allow pypi.org");
  expect_allowed(connect_to(p, "PYPI.org.", 443, "151.101.0.223"), 1, "rule 1: allow pypi.org");
  expect_denied(connect_to(p, "evil.EXAMPLE", 443, "93.184.216.34"), 0,
                "rule 0: deny evil.example");
}

TEST(PolicyDecision, PortsAreInclusiveRanges) {
  const auto p = policy({allow("a.com", {{443, 443}, {8000, 8080}}), allow("b.com")});
  for (uint16_t port : std::vector<uint16_t>{443, 8000, 8001, 8080}) {
    EXPECT_TRUE(connect_to(p, "a.com", port, "93.184.216.34").allowed) << port;
  }
  for (uint16_t port : std::vector<uint16_t>{80, 442, 444, 7999, 8081, 65535}) {
    expect_denied(connect_to(p, "a.com", port, "93.184.216.34"), -1, kDefaultDeny);
  }
  EXPECT_EQ(p.rule_text(0), "rule 0: allow a.com ports 443,8000-8080");
  for (uint16_t port : std::vector<uint16_t>{1, 22, 65535}) {  // empty: any port
    EXPECT_TRUE(connect_to(p, "b.com", port, "93.184.216.34").allowed) << port;
  }
  expect_denied(connect_to(p, "b.com", 0, "93.184.216.34"), -1, "port 0 is not a destination");
}

TEST(PolicyDecision, FirstMatchWinsInBothOrders) {
  const auto deny_first = policy({deny("a.example.com"), allow("*.example.com")});
  expect_denied(connect_to(deny_first, "a.example.com", 443, "93.184.216.34"), 0,
                "rule 0: deny a.example.com");
  expect_allowed(connect_to(deny_first, "b.example.com", 443, "93.184.216.34"), 1,
                 "rule 1: allow *.example.com");
  const auto allow_first = policy({allow("*.example.com"), deny("a.example.com")});
  expect_allowed(connect_to(allow_first, "a.example.com", 443, "93.184.216.34"), 0,
                 "rule 0: allow *.example.com");
  const auto ports = policy({deny("*", {{22, 22}}), allow("*")});
  expect_denied(connect_to(ports, "a.com", 22, "93.184.216.34"), 0, "rule 0: deny * ports 22");
  expect_allowed(connect_to(ports, "a.com", 443, "93.184.216.34"), 1, "rule 1: allow *");
}

TEST(PolicyDecision, MethodsAndPathsCheckPlainHttp) {
  const auto p = policy({allow("pypi.org", {}, {"GET", "HEAD"}, "/simple/")});
  const std::string text = "rule 0: allow pypi.org methods GET,HEAD path /simple/";
  expect_allowed(http_to(p, "GET", "pypi.org", "/simple/numpy/"), 0, text);
  expect_allowed(http_to(p, "HEAD", "pypi.org", "/simple/"), 0, text);
  expect_allowed(http_to(p, "GET", "pypi.org", "/simple/x?y=/../z"), 0, text);  // query ignored
  expect_denied(http_to(p, "POST", "pypi.org", "/simple/numpy/"), -1, kDefaultDeny);
  expect_denied(http_to(p, "get", "pypi.org", "/simple/"), -1, kDefaultDeny);  // exact case
  expect_denied(http_to(p, "GET", "pypi.org", "/simple"), -1, kDefaultDeny);
  expect_denied(http_to(p, "GET", "pypi.org", "/other?/simple/"), -1, kDefaultDeny);
  expect_denied(http_to(p, "GET", "pypi.org", "/other#/simple/"), -1, kDefaultDeny);
  expect_denied(http_to(p, "GET", "pypi.org", ""), -1, kDefaultDeny);
  // A plain prefix: "/simple" would match "/simplex" too; end the prefix with '/' to say
  // "the folder".
  const auto bare = policy({allow("a.com", {}, {}, "/api")});
  EXPECT_TRUE(http_to(bare, "GET", "a.com", "/apix").allowed);
}

TEST(PolicyDecision, RulesWithMethodsOrPathsNeverMatchConnect) {
  const auto p = policy({allow("pypi.org", {}, {"GET"}), allow("pypi.org", {}, {}, "/"),
                         deny("pypi.org")});
  expect_denied(connect_to(p, "pypi.org", 443, "151.101.0.223"), 2, "rule 2: deny pypi.org");
  expect_allowed(http_to(p, "GET", "pypi.org", "/"), 0, "rule 0: allow pypi.org methods GET");
  expect_allowed(http_to(p, "POST", "pypi.org", "/"), 1, "rule 1: allow pypi.org path /");
  // A deny with a method does not stop a tunnel either.
  const auto q = policy({deny("pypi.org", {}, {"POST"}), allow("pypi.org")});
  expect_allowed(connect_to(q, "pypi.org", 443, "151.101.0.223"), 1, "rule 1: allow pypi.org");
  expect_denied(http_to(q, "POST", "pypi.org", "/upload"), 0,
                "rule 0: deny pypi.org methods POST");
}

TEST(PolicyDecision, PathsThatAreNotPlainNeverMatchAnAllowAndAlwaysMatchADeny) {
  const auto p = policy({allow("a.com", {}, {}, "/simple/")});
  for (const char* path : {"/simple/../admin", "/simple/%2e%2e/admin", "/simple/%2E./admin",
                           "/simple//admin", "/simple/..;/admin", "/simple/.", "/simple\\..",
                           "/simple/%2fadmin", "/simple/a%5c..%5cb"}) {
    expect_denied(http_to(p, "GET", "a.com", path), -1, kDefaultDeny);
  }
  const auto q = policy({deny("a.com", {}, {}, "/admin"), allow("a.com")});
  for (const char* path : {"/admin", "/admin/x", "/x/../admin", "/%2e%2e/admin", "//admin",
                           "/./admin", "\\admin"}) {
    expect_denied(http_to(q, "GET", "a.com", path), 0, "rule 0: deny a.com path /admin");
  }
  expect_allowed(http_to(q, "GET", "a.com", "/public/admin"), 1, "rule 1: allow a.com");
  expect_allowed(http_to(q, "GET", "a.com", "/a.b/..c/...d"), 1, "rule 1: allow a.com");
}

TEST(PolicyDecision, RequestPathHelpers) {
  EXPECT_EQ(path_without_query("/a/b?c=d#e"), "/a/b");
  EXPECT_EQ(path_without_query("/a#b?c"), "/a");
  EXPECT_EQ(path_without_query("/a"), "/a");
  for (const char* plain : {"/", "/a/b", "/a.b/c..d/...", "/a;b", "/%41", "/.well-known/x"}) {
    EXPECT_TRUE(is_plain_path(plain)) << plain;
  }
  for (const char* odd : {"", "a/b", "*", "/.", "/..", "/a/./b", "/a/../b", "/a/..;x/b", "//",
                          "/a//b", "/a\\b", "/%2e", "/%2F", "/%5C"}) {
    EXPECT_FALSE(is_plain_path(odd)) << odd;
  }
}

TEST(PolicyDecision, Ipv4AndIpv6LiteralsAndBlocks) {
  const auto p = policy({allow("10.0.0.0/8"), allow("fd00::/8", {{443, 443}}),
                         allow("192.168.1.10"), allow("::1"), deny("8.8.8.0/24"), allow("*")});
  expect_allowed(connect_to(p, "10.1.2.3", 80, "10.1.2.3"), 0, "rule 0: allow 10.0.0.0/8");
  expect_allowed(connect_to(p, "::ffff:10.1.2.3", 80, "::ffff:10.1.2.3"), 0,
                 "rule 0: allow 10.0.0.0/8");
  expect_allowed(connect_to(p, "fd12:3456::1", 443, "fd12:3456::1"), 1,
                 "rule 1: allow fd00::/8 ports 443");
  expect_denied(connect_to(p, "fd12:3456::1", 80, "fd12:3456::1"), -1,
                "fd12:3456::1 is a special address (unique-local), which only an IP/CIDR rule "
                "can allow");
  expect_allowed(connect_to(p, "192.168.1.10", 80, "192.168.1.10"), 2,
                 "rule 2: allow 192.168.1.10");
  EXPECT_FALSE(connect_to(p, "192.168.1.11", 80, "192.168.1.11").allowed);
  expect_allowed(connect_to(p, "::1", 8080, "::1"), 3, "rule 3: allow ::1");
  expect_denied(connect_to(p, "8.8.8.8", 53, "8.8.8.8"), 4, "rule 4: deny 8.8.8.0/24");
  expect_allowed(connect_to(p, "8.8.4.4", 53, "8.8.4.4"), 5, "rule 5: allow *");
  EXPECT_FALSE(connect_to(p, "fe80::1", 80, "fe80::1").allowed);
  expect_allowed(connect_to(p, "11.0.0.1", 80, "11.0.0.1"), 5, "rule 5: allow *");
}

TEST(PolicyDecision, NameRulesOtherThanStarNeverMatchAnAddress) {
  const auto p = policy({allow("example.com"), allow("*.example.com")});
  expect_denied(connect_to(p, "93.184.216.34", 443, "93.184.216.34"), -1, kDefaultDeny);
}

TEST(PolicyDecision, IpRulesMatchANameByItsResolvedAddress) {
  const auto p = policy({deny("93.184.216.0/24"), allow("example.com")});
  expect_denied(connect_to(p, "example.com", 443, "93.184.216.34"), 0,
                "rule 0: deny 93.184.216.0/24");
  expect_allowed(connect_to(p, "example.com", 443, "93.184.217.1"), 1,
                 "rule 1: allow example.com");
  const auto q = policy({deny("10.0.0.0/8"), allow("*")});
  expect_denied(connect_to(q, "internal.corp", 443, "10.2.3.4"), 0, "rule 0: deny 10.0.0.0/8");
  expect_denied(connect_to(q, "internal.corp", 443, "::ffff:10.2.3.4"), 0,
                "rule 0: deny 10.0.0.0/8");
}

TEST(PolicyDecision, RebindingOntoSpecialAddressesIsRefusedWithAReason) {
  for (const auto& p : {policy({allow("pypi.org")}), policy({allow("*")}),
                        policy({allow("*.org")}), policy({allow("*"), allow("pypi.org")})}) {
    const std::vector<std::pair<const char*, std::string>> cases = {
        {"10.0.0.1", "10.0.0.1 (private)"},
        {"127.0.0.1", "127.0.0.1 (loopback)"},
        {"169.254.169.254", "169.254.169.254 (metadata)"},
        {"::1", "::1 (loopback)"},
        {"::ffff:127.0.0.1", "127.0.0.1 (loopback)"},
        {"64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe (metadata)"},
        {"2002:a00:1::1", "2002:a00:1::1 (private)"},
        {"fd00:ec2::254", "fd00:ec2::254 (metadata)"},
        {"100.64.1.1", "100.64.1.1 (cgnat)"},
        {"0.0.0.0", "0.0.0.0 (unspecified)"},
    };
    for (const auto& [address, shown] : cases) {
      expect_denied(connect_to(p, "pypi.org", 443, address), -1,
                    "pypi.org resolves to " + shown + ", which only an IP/CIDR rule can allow");
    }
    EXPECT_TRUE(connect_to(p, "pypi.org", 443, "151.101.0.223").allowed);
  }
}

TEST(PolicyDecision, ACidrAllowRuleReachesASpecialAddress) {
  const auto p = policy({allow("db.internal"), allow("10.0.0.0/8", {{5432, 5432}}),
                         allow("127.0.0.1"), allow("::ffff:169.254.169.254")});
  expect_allowed(connect_to(p, "db.internal", 5432, "10.0.0.7"), 1,
                 "rule 1: allow 10.0.0.0/8 ports 5432");
  expect_denied(connect_to(p, "db.internal", 443, "10.0.0.7"), -1,
                "db.internal resolves to 10.0.0.7 (private), which only an IP/CIDR rule can "
                "allow");
  expect_allowed(connect_to(p, "db.internal", 80, "127.0.0.1"), 2, "rule 2: allow 127.0.0.1");
  expect_allowed(connect_to(p, "db.internal", 80, "::ffff:127.0.0.1"), 2,
                 "rule 2: allow 127.0.0.1");
  expect_allowed(connect_to(p, "metadata.internal", 80, "169.254.169.254"), 3,
                 "rule 3: allow 169.254.169.254");
  // Without a name rule the IP rule still decides for any name.
  expect_allowed(connect_to(p, "anything.example", 5432, "10.9.9.9"), 1,
                 "rule 1: allow 10.0.0.0/8 ports 5432");
}

TEST(PolicyDecision, DenyRulesCountForSpecialAddresses) {
  const auto p = policy({deny("evil.com"), allow("*"), allow("10.0.0.0/8")});
  expect_denied(connect_to(p, "evil.com", 443, "10.0.0.1"), 0, "rule 0: deny evil.com");
  // "*" is skipped for the special address, so the CIDR rule behind it decides.
  expect_allowed(connect_to(p, "good.com", 443, "10.0.0.1"), 2, "rule 2: allow 10.0.0.0/8");
  const auto q = policy({deny("*"), allow("10.0.0.0/8")});
  expect_denied(connect_to(q, "good.com", 443, "10.0.0.1"), 0, "rule 0: deny *");
  // For an address literal "*" matches public addresses only, a deny as well as an allow.
  expect_allowed(connect_to(q, "10.0.0.1", 443, "10.0.0.1"), 1, "rule 1: allow 10.0.0.0/8");
  expect_denied(connect_to(q, "8.8.8.8", 443, "8.8.8.8"), 0, "rule 0: deny *");
}

TEST(PolicyDecision, DecideByNameBeforeDns) {
  const auto by_name = [](const CompiledPolicy& p, const char* host, uint16_t port = 443) {
    return p.decide_by_name(target(host, port));
  };
  const auto expect_verdict = [](const PreDecision& v, NameVerdict kind, int rule,
                                 const std::string& text) {
    EXPECT_EQ(v.verdict, kind) << v.decision.text;
    EXPECT_EQ(v.decision.allowed, kind == NameVerdict::kAllowed);
    EXPECT_EQ(v.decision.rule, rule) << v.decision.text;
    EXPECT_EQ(v.decision.text, text);
  };
  const auto names = policy({allow("pypi.org")});
  expect_verdict(by_name(names, "pypi.org"), NameVerdict::kNeedsAddress, 0,
                 "rule 0: allow pypi.org (if pypi.org resolves to a public address)");
  expect_verdict(by_name(names, "other.org"), NameVerdict::kDenied, -1, kDefaultDeny);

  const auto deny_first = policy({deny("evil.com"), allow("*")});
  expect_verdict(by_name(deny_first, "EVIL.com."), NameVerdict::kDenied, 0, "rule 0: deny evil.com");
  expect_verdict(by_name(deny_first, "good.com"), NameVerdict::kNeedsAddress, 1,
                 "rule 1: allow * (if good.com resolves to a public address)");

  const auto ip_first = policy({deny("10.0.0.0/8"), deny("*")});
  expect_verdict(by_name(ip_first, "x.com"), NameVerdict::kNeedsAddress, 0,
                 "rule 0: deny 10.0.0.0/8 (needs the address x.com resolves to)");
  const auto name_first = policy({deny("*"), allow("10.0.0.0/8")});
  expect_verdict(by_name(name_first, "x.com"), NameVerdict::kDenied, 0, "rule 0: deny *");

  const auto ip_other_port = policy({allow("10.0.0.0/8", {{5432, 5432}}), deny("x.com")});
  expect_verdict(by_name(ip_other_port, "x.com", 443), NameVerdict::kDenied, 1, "rule 1: deny x.com");
  expect_verdict(by_name(ip_other_port, "x.com", 5432), NameVerdict::kNeedsAddress, 0,
                 "rule 0: allow 10.0.0.0/8 ports 5432 (needs the address x.com resolves to)");
  expect_verdict(by_name(ip_other_port, "y.com", 443), NameVerdict::kDenied, -1, kDefaultDeny);

  expect_verdict(by_name(policy({}), "pypi.org"), NameVerdict::kDenied, -1, kDefaultDeny);
  expect_verdict(by_name(names, "pypi.org", 0), NameVerdict::kDenied, -1, "port 0 is not a destination");
}

TEST(PolicyDecision, DecideByNameIsFinalForLiterals) {
  const auto p = policy({allow("10.0.0.0/8"), allow("*")});
  const auto v1 = p.decide_by_name(target("10.1.1.1", 80));
  EXPECT_EQ(v1.verdict, NameVerdict::kAllowed);
  expect_allowed(v1.decision, 0, "rule 0: allow 10.0.0.0/8");
  const auto v2 = p.decide_by_name(target("8.8.8.8", 80));
  EXPECT_EQ(v2.verdict, NameVerdict::kAllowed);
  expect_allowed(v2.decision, 1, "rule 1: allow *");
  const auto v3 = p.decide_by_name(target("127.0.0.1", 80));
  EXPECT_EQ(v3.verdict, NameVerdict::kDenied);
  expect_denied(v3.decision, -1,
                "127.0.0.1 is a special address (loopback), which only an IP/CIDR rule can allow");
  const auto v4 = policy({deny("*"), allow("10.0.0.0/8")}).decide_by_name(target("10.0.0.1", 80));
  EXPECT_EQ(v4.verdict, NameVerdict::kAllowed);
  EXPECT_EQ(v4.decision.rule, 1);
}

TEST(PolicyDecision, HostsAreNormalizedAgainAndInvalidOnesAreDenied) {
  const auto p = policy({deny("evil.com"), allow("*")});
  // A host that skipped normalize_host() cannot slip past a name rule.
  expect_denied(p.decide(target("EVIL.com.", 443), ip("93.184.216.34")), 0,
                "rule 0: deny evil.com");
  EXPECT_EQ(p.decide_by_name(target("EVIL.com.", 443)).verdict, NameVerdict::kDenied);
  expect_denied(p.decide(target("", 443), ip("93.184.216.34")), -1, "invalid host: empty host");
  const auto numeric = p.decide_by_name(target("127.1", 80));
  EXPECT_EQ(numeric.verdict, NameVerdict::kDenied);
  expect_denied(numeric.decision, -1,
                "invalid host: numeric host \"127.1\" is not a dotted quad (resolvers would read "
                "it as an address)");
  expect_denied(p.decide(target("[::1]", 443), ip("::1")), -1,
                "invalid host: brackets in host \"[::1]\" (give IPv6 without them)");
  // A literal is connected to as itself.
  expect_denied(p.decide(target("8.8.8.8", 443), ip("8.8.4.4")), -1,
                "address 8.8.4.4 is not the requested address 8.8.8.8");
  expect_allowed(p.decide(target("::ffff:8.8.8.8", 443), ip("8.8.8.8")), 1, "rule 1: allow *");
  expect_allowed(p.decide(target("8.8.8.8", 443), ip("::ffff:8.8.8.8")), 1, "rule 1: allow *");
}

TEST(PolicyDecision, PoliciesAreSharedAndCopiedAsValues) {
  auto shared = std::make_shared<const CompiledPolicy>(policy({allow("a.com")}));
  const CompiledPolicy copy = *shared;
  shared.reset();
  EXPECT_TRUE(connect_to(copy, "a.com", 443, "93.184.216.34").allowed);
}

}  // namespace
}  // namespace forkvm::net
