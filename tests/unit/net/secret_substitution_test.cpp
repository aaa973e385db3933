// unit tier: secrets go into plain HTTP request headers only for their hosts: a bound header is
// set once (whatever case the guest used), placeholders are replaced wherever they appear,
// several times, without cutting into longer placeholders or re-reading values; requests to
// any other host (or to an IP literal) keep the placeholder.
#include "net/secret_substitution.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "net/egress_rules.hpp"
#include "tests/unit/net/policy_test_util.hpp"

namespace forkvm::net {
namespace {

using policy_test::secret;

using Headers = std::vector<std::pair<std::string, std::string>>;
using Names = std::vector<std::string>;

CompiledPolicy with_secrets(std::vector<SecretBinding> secrets) {
  EgressPolicy p;
  p.secrets = std::move(secrets);
  return CompiledPolicy(std::move(p));
}

TEST(SecretSubstitution, BindsSaysWhichHostsGetAValue) {
  const auto p = with_secrets({secret("GH", {"api.github.com", "*.example.org"}, "v")});
  EXPECT_TRUE(p.binds_secrets("api.github.com"));
  EXPECT_TRUE(p.binds_secrets("API.GitHub.com."));
  EXPECT_TRUE(p.binds_secrets("a.b.example.org"));
  EXPECT_FALSE(p.binds_secrets("example.org"));
  EXPECT_FALSE(p.binds_secrets("github.com"));
  EXPECT_FALSE(p.binds_secrets("140.82.112.6"));
  EXPECT_FALSE(p.binds_secrets("bad host"));
  EXPECT_FALSE(with_secrets({}).binds_secrets("api.github.com"));
}

TEST(SecretSubstitution, HeaderModeSetsOneHeaderWhateverTheCase) {
  const auto p = with_secrets({secret("GH", {"api.github.com"}, "Bearer real", "Authorization")});
  Headers h = {{"authorization", "Bearer forkvm-secret-GH"},
               {"Accept", "*/*"},
               {"AUTHORIZATION", "Basic x"},
               {"X-Other", "1"}};
  EXPECT_EQ(p.apply_secrets("api.github.com", h), Names{"GH"});
  const Headers expected = {{"Authorization", "Bearer real"}, {"Accept", "*/*"}, {"X-Other", "1"}};
  EXPECT_EQ(h, expected);

  Headers none = {{"Accept", "*/*"}};
  EXPECT_EQ(p.apply_secrets("API.GitHub.com.", none), Names{"GH"});
  const Headers appended = {{"Accept", "*/*"}, {"Authorization", "Bearer real"}};
  EXPECT_EQ(none, appended);
}

TEST(SecretSubstitution, PlaceholderModeReplacesEveryOccurrence) {
  const auto p = with_secrets({secret("TOKEN", {"pypi.org"}, "s3cr3t")});
  Headers h = {{"X-Token", "forkvm-secret-TOKEN"},
               {"Cookie", "a=forkvm-secret-TOKEN; b=forkvm-secret-TOKENforkvm-secret-TOKEN"},
               {"Accept", "forkvm-secret-TOKE"}};
  EXPECT_EQ(p.apply_secrets("pypi.org", h), Names{"TOKEN"});
  const Headers expected = {{"X-Token", "s3cr3t"},
                            {"Cookie", "a=s3cr3t; b=s3cr3ts3cr3t"},
                            {"Accept", "forkvm-secret-TOKE"}};
  EXPECT_EQ(h, expected);
}

TEST(SecretSubstitution, OnlyBoundHostsGetTheValue) {
  const auto p = with_secrets({secret("TOKEN", {"pypi.org"}, "s3cr3t", "X-Api-Key")});
  const Headers original = {{"X-Token", "forkvm-secret-TOKEN"}, {"x-api-key", "guest"}};
  for (const char* host : {"evil.com", "files.pypi.org", "pypi.org.evil.com", "151.101.0.223",
                           "::1", "not a host", ""}) {
    Headers h = original;
    EXPECT_TRUE(p.apply_secrets(host, h).empty()) << host;
    EXPECT_EQ(h, original) << host;
  }
  Headers h = original;
  EXPECT_EQ(p.apply_secrets("PYPI.ORG.", h), Names{"TOKEN"});
  const Headers expected = {{"X-Token", "s3cr3t"}, {"X-Api-Key", "s3cr3t"}};
  EXPECT_EQ(h, expected);
}

TEST(SecretSubstitution, WildcardHostBindings) {
  const auto p = with_secrets({secret("GH", {"*.github.com", "github.io"}, "v")});
  for (const char* host : {"api.github.com", "a.b.github.com", "github.io"}) {
    Headers h = {{"X", "forkvm-secret-GH"}};
    EXPECT_EQ(p.apply_secrets(host, h), Names{"GH"}) << host;
    EXPECT_EQ(h[0].second, "v") << host;
  }
  for (const char* host : {"github.com", "x.github.io", "evilgithub.com"}) {
    Headers h = {{"X", "forkvm-secret-GH"}};
    EXPECT_TRUE(p.apply_secrets(host, h).empty()) << host;
    EXPECT_EQ(h[0].second, "forkvm-secret-GH") << host;
  }
}

TEST(SecretSubstitution, OnlyTheSecretsOfTheHostAndOnlyThoseUsedAreReported) {
  const auto p = with_secrets({secret("A", {"a.com"}, "va"), secret("AB", {"b.com"}, "vab"),
                               secret("C", {"a.com"}, "vc"),
                               secret("D", {"a.com"}, "vd", "", "{{D}}")});
  Headers h = {{"X", "forkvm-secret-AB forkvm-secret-A forkvm-secret-ABC {{D}}{{D}}"}};
  // AB is longer than A and not bound to a.com: it stays whole; C is bound but unused.
  EXPECT_EQ(p.apply_secrets("a.com", h), (Names{"A", "D"}));
  EXPECT_EQ(h[0].second, "forkvm-secret-AB va forkvm-secret-ABC vdvd");
  Headers b = {{"X", "forkvm-secret-AB forkvm-secret-A"}};
  EXPECT_EQ(p.apply_secrets("b.com", b), Names{"AB"});
  EXPECT_EQ(b[0].second, "vab forkvm-secret-A");
  Headers unused = {{"X", "nothing here"}};
  EXPECT_TRUE(p.apply_secrets("a.com", unused).empty());
}

TEST(SecretSubstitution, ValuesPutInAreNotSearchedAgain) {
  const auto p = with_secrets({secret("A", {"a.com"}, "forkvm-secret-B"),
                               secret("B", {"a.com"}, "b-value")});
  Headers h = {{"X", "forkvm-secret-A"}};
  EXPECT_EQ(p.apply_secrets("a.com", h), Names{"A"});
  EXPECT_EQ(h[0].second, "forkvm-secret-B");
}

TEST(SecretSubstitution, TheHeaderModeWinsOverAPlaceholderInTheSameHeader) {
  const auto p = with_secrets({secret("GH", {"api.github.com"}, "Bearer real", "Authorization"),
                               secret("X", {"api.github.com"}, "xv", "X-Key")});
  Headers h = {{"Authorization", "Bearer forkvm-secret-GH"}, {"Y", "forkvm-secret-X"}};
  EXPECT_EQ(p.apply_secrets("api.github.com", h), (Names{"GH", "X"}));
  const Headers expected = {{"Authorization", "Bearer real"}, {"Y", "xv"}, {"X-Key", "xv"}};
  EXPECT_EQ(h, expected);
}

TEST(SecretSubstitution, NoSecretsLeaveEverythingAlone) {
  const CompiledPolicy p{EgressPolicy{}};
  Headers h = {{"Authorization", "forkvm-secret-GH"}};
  EXPECT_TRUE(p.apply_secrets("api.github.com", h).empty());
  EXPECT_EQ(h[0].second, "forkvm-secret-GH");
  EXPECT_TRUE(p.placeholders().empty());
}

TEST(SecretSubstitution, SecretSetOnItsOwn) {
  const SecretSet set({secret("T", {"a.com"}, "v", "", "PH")});
  Headers h = {{"K", "PHPH"}};
  EXPECT_EQ(set.apply("a.com", h), Names{"T"});
  EXPECT_EQ(h[0].second, "vv");
  const std::vector<std::pair<std::string, std::string>> expected = {{"T", "PH"}};
  EXPECT_EQ(set.placeholders(), expected);
}

}  // namespace
}  // namespace forkvm::net
