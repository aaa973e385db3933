// TlsAuthority (net/tls_authority.hpp): the per-sandbox CA's certificate, the leaves it mints
// (checked with OpenSSL's own chain and name verification), the leaf cache, and UpstreamTrust's
// anchors file. No sockets.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "forkvm/errors.hpp"
#include "net/tls_authority.hpp"
#include "net/upstream_trust.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::net {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr parse_pem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509Ptr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return cert;
}

X509* leaf_of(const std::shared_ptr<boost::asio::ssl::context>& context) {
  return SSL_CTX_get0_certificate(context->native_handle());
}

bool critical(X509* cert, int nid) {
  const int index = X509_get_ext_by_NID(cert, nid, -1);
  return index >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, index)) == 1;
}

// Verifies `leaf` against `ca` alone for a TLS server named `name` (an address when `is_ip`);
// returns OpenSSL's verify result.
int verify(X509* leaf, X509* ca, const std::string& name, bool is_ip) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* context = X509_STORE_CTX_new();
  X509_STORE_CTX_init(context, store, leaf, nullptr);
  X509_STORE_CTX_set_purpose(context, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(context);
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
  }
  const int ok = X509_verify_cert(context);
  const int result = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(context);
  X509_STORE_CTX_free(context);
  X509_STORE_free(store);
  return result;
}

TEST(TlsAuthorityTest, TheCaCertificateIsAConstrainedSelfSignedCa) {
  const auto authority = TlsAuthority::create("test CA");
  const X509Ptr ca = parse_pem(authority->ca_pem());
  ASSERT_TRUE(ca);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(X509_get_pathlen(ca.get()), 0);
  EXPECT_TRUE(critical(ca.get(), NID_basic_constraints));
  EXPECT_TRUE(critical(ca.get(), NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(ca.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get0_subject_key_id(ca.get()), nullptr);
  EXPECT_EQ(X509_check_issued(ca.get(), ca.get()), X509_V_OK);  // self-signed
  EXPECT_EQ(X509_verify(ca.get(), X509_get0_pubkey(ca.get())), 1);
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(ca.get())), 256);
  // Valid now, for about a year.
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(ca.get())), 0);
  EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(ca.get())), 0);
  // A fresh key and serial each time.
  const X509Ptr other = parse_pem(TlsAuthority::create("test CA")->ca_pem());
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(ca.get()),
                             X509_get0_serialNumber(other.get())), 0);
  EXPECT_NE(EVP_PKEY_eq(X509_get0_pubkey(ca.get()), X509_get0_pubkey(other.get())), 1);
  EXPECT_EQ(authority->ca_pem().find("PRIVATE"), std::string::npos);
}

// The CA is made on first use, once, whichever threads ask at the same time: all get the same
// certificate, and a leaf minted first (server_context before ca_pem) is signed by it too.
TEST(TlsAuthorityTest, MadeOnceOnFirstUseFromAnyThread) {
  const auto authority = TlsAuthority::create("lazy CA");
  const auto context = authority->server_context("api.example.com");
  ASSERT_TRUE(context);
  std::vector<std::string> pems(8);
  {
    std::vector<std::jthread> threads;
    for (size_t i = 0; i < pems.size(); ++i) {
      threads.emplace_back([&, i] { pems[i] = authority->ca_pem(); });
    }
  }
  for (const auto& pem : pems) EXPECT_EQ(pem, pems[0]);
  const X509Ptr ca = parse_pem(pems[0]);
  ASSERT_TRUE(ca);
  EXPECT_EQ(X509_cmp(ca.get(), authority->ca_certificate()), 0);
  X509* leaf = SSL_CTX_get0_certificate(context->native_handle());
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(X509_check_issued(authority->ca_certificate(), leaf), X509_V_OK);
}

TEST(TlsAuthorityTest, ALeafVerifiesForItsNameOnly) {
  const auto authority = TlsAuthority::create();
  X509* leaf = leaf_of(authority->server_context("api.example.com"));
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(verify(leaf, authority->ca_certificate(), "api.example.com", false), X509_V_OK);
  EXPECT_EQ(verify(leaf, authority->ca_certificate(), "other.example.com", false),
            X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(X509_check_ca(leaf), 0);
  EXPECT_TRUE(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
  EXPECT_NE(X509_get0_authority_key_id(leaf), nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
                                  X509_get0_subject_key_id(authority->ca_certificate())), 0);
  // Another authority's CA does not vouch for it.
  const auto stranger = TlsAuthority::create();
  EXPECT_NE(verify(leaf, stranger->ca_certificate(), "api.example.com", false), X509_V_OK);
}

TEST(TlsAuthorityTest, ALeafForAnAddressHasAnIpSubjectAltName) {
  const auto authority = TlsAuthority::create();
  X509* v4 = leaf_of(authority->server_context("127.0.0.1"));
  EXPECT_EQ(verify(v4, authority->ca_certificate(), "127.0.0.1", true), X509_V_OK);
  EXPECT_NE(verify(v4, authority->ca_certificate(), "127.0.0.2", true), X509_V_OK);
  X509* v6 = leaf_of(authority->server_context("::1"));
  EXPECT_EQ(verify(v6, authority->ca_certificate(), "::1", true), X509_V_OK);
}

TEST(TlsAuthorityTest, CachesOneContextPerHostAndRefusesOddHosts) {
  const auto authority = TlsAuthority::create();
  const auto a = authority->server_context("a.example");
  EXPECT_EQ(a.get(), authority->server_context("a.example").get());
  EXPECT_NE(a.get(), authority->server_context("b.example").get());
  // One leaf key for the authority.
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf_of(a)),
                        X509_get0_pubkey(leaf_of(authority->server_context("b.example")))), 1);
  EXPECT_THROW(authority->server_context("a b"), ConfigError);
  EXPECT_THROW(authority->server_context("a,DNS:evil.example"), ConfigError);
  EXPECT_THROW(authority->server_context(""), ConfigError);
  // Bounded: the first host goes once the cache is full, and comes back as a new context.
  for (std::size_t i = 0; i < TlsAuthority::kMaxCachedLeaves; ++i) {
    authority->server_context("h" + std::to_string(i) + ".example");
  }
  EXPECT_NE(a.get(), authority->server_context("a.example").get());
}

TEST(UpstreamTrustTest, ReadsAnchorsAndRefusesBadFiles) {
  test::TempDir dir;
  const std::string good = dir / "ca.pem";
  std::ofstream(good) << TlsAuthority::create()->ca_pem() << TlsAuthority::create()->ca_pem();
  const UpstreamTrust trust(good);
  EXPECT_EQ(trust.ca_file(), good);
  EXPECT_NE(trust.make_context(), nullptr);
  EXPECT_EQ(trust.shared_context().get(), trust.shared_context().get());
  EXPECT_THROW(UpstreamTrust(dir / "missing.pem"), ConfigError);
  const std::string junk = dir / "junk.pem";
  std::ofstream(junk) << "not a certificate\n";
  EXPECT_THROW(UpstreamTrust{junk}, ConfigError);
  EXPECT_NO_THROW(UpstreamTrust{});
}

}  // namespace
}  // namespace forkvm::net
