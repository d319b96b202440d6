// Where ringfenced may serve without authentication (service/server.h),
// and who a token or a client certificate names (service/auth.h).
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/server.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(IsLoopbackAddressTest, LoopbackAndLocalSockets) {
  for (const char* a :
       {"127.0.0.1:7443", "127.0.0.1:0", "127.1.2.3:80", "localhost:7443",
        "LOCALHOST:1", "[::1]:7443", "[::ffff:127.0.0.1]:7443",
        "unix:/run/ringfence.sock", "unix-abstract:ringfence"}) {
    EXPECT_TRUE(IsLoopbackAddress(a)) << a;
  }
}

TEST(IsLoopbackAddressTest, EverythingElse) {
  for (const char* a :
       {"0.0.0.0:7443", "[::]:7443", ":7443", "10.0.0.5:7443", "128.0.0.1:7443",
        "rollouts.example:7443", "[::ffff:10.0.0.1]:1", "[::2]:1", "127.0.0.1",
        "[::1", "localhost.example:1", "", "dns:///localhost:7443"}) {
    EXPECT_FALSE(IsLoopbackAddress(a)) << a;
  }
}

TEST(CheckAuthenticationTest, NoAuthOnlyWhereNobodyElseCanCall) {
  ServerOptions options;
  options.listen = "127.0.0.1:7443";
  EXPECT_OK(CheckAuthentication(options));
  options.listen = "0.0.0.0:7443";
  EXPECT_THAT(CheckAuthentication(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("listen: \"0.0.0.0:7443\" is not a "
                                       "loopback address"),
                             HasSubstr("--insecure_no_auth"))));
  options.insecure_no_auth = true;
  EXPECT_OK(CheckAuthentication(options));
  options.insecure_no_auth = false;
  // Mutual TLS: only holders of a client certificate connect.
  options.tls.emplace();
  EXPECT_FALSE(CheckAuthentication(options).ok());  // TLS alone is not
  options.tls->client_ca_pem = "-----BEGIN CERTIFICATE-----...";
  EXPECT_OK(CheckAuthentication(options));
  options.tls.reset();
  absl::StatusOr<TokenAuthenticator> auth =
      TokenAuthenticator::Parse("t0ken admin root\n", "tokens");
  ASSERT_OK(auth.status());
  options.auth = *std::move(auth);
  EXPECT_OK(CheckAuthentication(options));
}

TEST(TokenAuthenticatorTest, AHostTokenIsBoundToItsHostARelayIsNot) {
  absl::StatusOr<TokenAuthenticator> auth = TokenAuthenticator::Parse(
      "t-host host web-0042\nt-relay relay gateway-eu\nt-op operator alice\n",
      "tokens");
  ASSERT_OK(auth.status());
  absl::StatusOr<Principal> host = auth->Authenticate("Bearer t-host");
  ASSERT_OK(host.status());
  EXPECT_EQ(host->role, Role::kHost);
  EXPECT_EQ(host->host_id, "web-0042");
  EXPECT_OK(AuthorizeHost(*host, "web-0042", "host_id"));
  EXPECT_THAT(
      AuthorizeHost(*host, "web-0043", "events[2].host_id"),
      StatusIs(absl::StatusCode::kPermissionDenied,
               AllOf(HasSubstr("events[2].host_id"), HasSubstr("\"web-0042\""),
                     HasSubstr("not \"web-0043\""))));
  for (const char* token : {"Bearer t-relay", "Bearer t-op"}) {
    absl::StatusOr<Principal> p = auth->Authenticate(token);
    ASSERT_OK(p.status());
    EXPECT_EQ(p->host_id, "") << token;
    EXPECT_OK(AuthorizeHost(*p, "web-0043", "host_id")) << token;
  }
  EXPECT_EQ(auth->Authenticate("Bearer t-relay")->role, Role::kRelay);
  EXPECT_THAT(TokenAuthenticator::Parse("t wizard merlin\n", "tokens").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("host, relay, publisher, operator or admin")));
}

TEST(PrincipalFromCertificateUrisTest, TheOneRingfenceUriNamesThePrincipal) {
  absl::StatusOr<std::optional<Principal>> p = PrincipalFromCertificateUris(
      {"spiffe://example.org/agent", "ringfence://host/web-0042"});
  ASSERT_OK(p.status());
  ASSERT_TRUE(p->has_value());
  EXPECT_EQ((*p)->role, Role::kHost);
  EXPECT_EQ((*p)->actor, "web-0042");
  EXPECT_EQ((*p)->host_id, "web-0042");

  p = PrincipalFromCertificateUris({"ringfence://operator/alice"});
  ASSERT_OK(p.status());
  EXPECT_EQ((*p)->role, Role::kOperator);
  EXPECT_EQ((*p)->host_id, "");

  // No ringfence:// URI: the certificate names nobody (tokens decide).
  p = PrincipalFromCertificateUris({});
  ASSERT_OK(p.status());
  EXPECT_FALSE(p->has_value());
  p = PrincipalFromCertificateUris({"https://example.org/host/web-1"});
  ASSERT_OK(p.status());
  EXPECT_FALSE(p->has_value());
}

TEST(PrincipalFromCertificateUrisTest, AMalformedIdentityIsRefused) {
  const std::string long_actor(5000, 'a');
  for (const std::vector<std::string>& uris :
       std::vector<std::vector<std::string>>{
           {"ringfence://wizard/merlin"},
           {"ringfence://host"},
           {"ringfence://host/"},
           {"ringfence://host/web 1"},
           {"ringfence://host/" + long_actor},
           {"ringfence://host/a", "ringfence://admin/b"}}) {
    absl::StatusOr<std::optional<Principal>> p =
        PrincipalFromCertificateUris(uris);
    EXPECT_THAT(p.status(), StatusIs(absl::StatusCode::kUnauthenticated,
                                     HasSubstr("client certificate URI")))
        << uris.back().substr(0, 40);
    // Errors quote the URI cut short, never whole.
    EXPECT_LT(p.status().message().size(), 400u);
  }
}

}  // namespace
}  // namespace ringfence
