// unit tier: normalize_host() on the hosts a guest may send (from an absolute URI, a Host header
// or a CONNECT authority, already split from the port): names are lower-cased and lose one
// trailing dot, IP literals get their canonical form, and anything malformed, ambiguous or
// that a resolver would read as an address in disguise is refused with a reason.
#include "net/host_name.hpp"

#include <gtest/gtest.h>

#include <string>

namespace forkvm::net {
namespace {

std::string refusal(std::string_view host) {
  const HostCheck result = normalize_host(host);
  if (!result.host) return result.error;
  ADD_FAILURE() << "accepted: " << result.host->text;
  return "";
}

NormalizedHost accepted(std::string_view host) {
  HostCheck result = normalize_host(host);
  if (!result.host) {
    ADD_FAILURE() << "refused " << host << ": " << result.error;
    return {};
  }
  EXPECT_TRUE(result.error.empty());
  return std::move(*result.host);
}

TEST(HostName, NamesAreLowerCasedAndLoseOneTrailingDot) {
  for (const char* host : {"pypi.org", "PyPI.ORG", "pypi.org.", "PYPI.ORG."}) {
    const NormalizedHost h = accepted(host);
    EXPECT_EQ(h.text, "pypi.org") << host;
    EXPECT_EQ(h.kind, HostKind::kName) << host;
  }
  EXPECT_EQ(accepted("localhost").text, "localhost");
  EXPECT_EQ(accepted("_dmarc.example.com").text, "_dmarc.example.com");
  EXPECT_EQ(accepted("xn--bcher-kva.example").text, "xn--bcher-kva.example");
  EXPECT_EQ(accepted("a-b.c-d.example").text, "a-b.c-d.example");
  EXPECT_EQ(accepted("123.example.com").text, "123.example.com");
  EXPECT_EQ(accepted("example.123abc").text, "example.123abc");
}

TEST(HostName, LengthLimits) {
  const std::string l63(63, 'a');
  const std::string l61(61, 'b');
  const std::string name253 = l63 + "." + l63 + "." + l63 + "." + l61;
  ASSERT_EQ(name253.size(), 253u);
  EXPECT_EQ(accepted(name253).text, name253);
  EXPECT_EQ(accepted(name253 + ".").text, name253);  // the root dot does not count
  EXPECT_NE(refusal(name253 + "c").find("longer than 253"), std::string::npos);
  EXPECT_NE(refusal(name253 + "..").find("253"), std::string::npos);
  EXPECT_EQ(accepted(l63 + ".com").text, l63 + ".com");
  EXPECT_NE(refusal(l63 + "a.com").find("label longer than 63"), std::string::npos);
  EXPECT_NE(refusal(std::string(400, 'a')).find("longer"), std::string::npos);
}

TEST(HostName, BadLabelsAreRefused) {
  EXPECT_EQ(refusal(""), "empty host");
  EXPECT_EQ(refusal("."), "empty host name");
  for (const char* host : {"..", "a..b", ".a", "a.b..", "..a", "10.0.0.1.."}) {
    EXPECT_NE(refusal(host).find("empty label"), std::string::npos) << host;
  }
  for (const char* host : {"-a.com", "a-.com", "a.-b.com", "a.b-"}) {
    EXPECT_NE(refusal(host).find("'-'"), std::string::npos) << host;
  }
  for (const char* host : {"a/b.com", "user@example.com", "a*b.com", "*.example.com",
                           "exa!mple.com", "a+b.com", "a,b.com", "a\"b.com", "a\\b.com"}) {
    EXPECT_NE(refusal(host).find("not allowed"), std::string::npos) << host;
  }
  EXPECT_NE(refusal("b\xc3\xbc"
                    "cher.de")
                .find("non-ASCII"),
            std::string::npos);
}

TEST(HostName, SpacesAndControlCharactersAreRefused) {
  for (std::string host : {std::string("exa mple.com"), std::string(" example.com"),
                           std::string("example.com "), std::string("exa\tmple.com"),
                           std::string("example.com\r\n"), std::string("ex\nample.com"),
                           std::string("a\x7f.com"), std::string("a\0b.com", 7)}) {
    EXPECT_NE(refusal(host).find("control, space or non-ASCII"), std::string::npos)
        << "[" << host << "]";
  }
  // The reason quotes the host with the control characters escaped.
  EXPECT_NE(refusal("ex\nample.com").find("ex\\x0aample.com"), std::string::npos);
}

TEST(HostName, NumericTricksThatResolversReadAsAddressesAreRefused) {
  for (const char* host :
       {"127.1", "127.0.1", "0x7f.0.0.1", "0x7F.0.0.1", "2130706433", "0x7f000001", "017.0.0.1",
        "0177.0.0.1", "127.0.0.01", "127.000.0.1", "0", "0x", "1.2.3.4.5", "256.1.1.1",
        "1.2.3.256", "1.2.3", "a.1", "example.0x1f", "foo.123", "127.0.0.1.1"}) {
    EXPECT_NE(refusal(host).find("numeric host"), std::string::npos) << host;
  }
}

TEST(HostName, StrictDottedQuadsAreIpv4Literals) {
  const NormalizedHost h = accepted("10.0.0.1");
  ASSERT_EQ(h.kind, HostKind::kAddress);
  EXPECT_TRUE(h.address.is_v4());
  EXPECT_EQ(h.text, "10.0.0.1");
  EXPECT_EQ(accepted("0.0.0.0").text, "0.0.0.0");
  EXPECT_EQ(accepted("255.255.255.255").text, "255.255.255.255");
  EXPECT_EQ(accepted("8.8.8.8.").text, "8.8.8.8");  // the root dot, as for names
  EXPECT_TRUE(is_strict_dotted_quad("192.168.1.10"));
  for (const char* text : {"", "1.2.3", "1.2.3.4.", "01.2.3.4", "1.2.3.4 ", "+1.2.3.4",
                           "1..2.3", "1.2.3.1000", "1.2.3.256", "0x1.2.3.4", "1.2.3.4.5"}) {
    EXPECT_FALSE(is_strict_dotted_quad(text)) << text;
  }
}

TEST(HostName, Ipv6LiteralsComeWithoutBracketsOrZones) {
  const NormalizedHost h = accepted("2001:DB8:0:0::1");
  ASSERT_EQ(h.kind, HostKind::kAddress);
  EXPECT_TRUE(h.address.is_v6());
  EXPECT_EQ(h.text, "2001:db8::1");
  EXPECT_EQ(accepted("::1").text, "::1");
  EXPECT_EQ(accepted("::").text, "::");
  EXPECT_EQ(accepted("::FFFF:10.0.0.1").text, "::ffff:10.0.0.1");
  EXPECT_NE(refusal("[::1]").find("brackets"), std::string::npos);
  EXPECT_NE(refusal("[example.com]").find("brackets"), std::string::npos);
  EXPECT_NE(refusal("fe80::1%eth0").find("zone id"), std::string::npos);
  EXPECT_NE(refusal("fe80::1%25eth0").find("zone id"), std::string::npos);
  EXPECT_NE(refusal("%41.example").find("'%'"), std::string::npos);
  for (const char* host : {":::1", "1::2::3", "::1.2.3", "::ffff:01.2.3.4", "::ffff:1.2.3.256",
                           "1:2:3:4:5:6:7:8:9", "example.com:443", "::1.", "g::1"}) {
    EXPECT_NE(refusal(host).find("not an IPv6 address"), std::string::npos) << host;
  }
}

}  // namespace
}  // namespace forkvm::net
