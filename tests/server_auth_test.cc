// Where ringfenced may serve without authentication (service/server.h).
#include <string>

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

}  // namespace
}  // namespace ringfence
