// IsSameOrigin: which Origin headers count as the HTTP listener's own (a
// state-changing request with any other is refused with 403).
#include "gtest/gtest.h"
#include "service/http_server.h"

namespace ringfence {
namespace {

TEST(IsSameOriginTest, TheServersOwnOrigin) {
  EXPECT_TRUE(IsSameOrigin("http://127.0.0.1:8080", "127.0.0.1:8080", false));
  EXPECT_TRUE(IsSameOrigin("http://LOCALHOST:8080", "localhost:8080", false));
  EXPECT_TRUE(IsSameOrigin("http://[::1]:9", "[::1]:9", false));
  EXPECT_TRUE(IsSameOrigin("https://rf.example", "rf.example:443", true));
  EXPECT_TRUE(IsSameOrigin("http://rf.example:80", "rf.example", false));
}

TEST(IsSameOriginTest, AnythingElse) {
  EXPECT_FALSE(IsSameOrigin("http://evil.example", "127.0.0.1:8080", false));
  EXPECT_FALSE(IsSameOrigin("http://127.0.0.1:8081", "127.0.0.1:8080", false));
  // Another scheme is another origin.
  EXPECT_FALSE(IsSameOrigin("https://127.0.0.1:8080", "127.0.0.1:8080", false));
  EXPECT_FALSE(IsSameOrigin("http://127.0.0.1:8080", "127.0.0.1:8080", true));
  EXPECT_FALSE(IsSameOrigin("http://rf.example", "rf.example:443", true));
  // Opaque origins (sandboxed frames, file: pages) and malformed values.
  EXPECT_FALSE(IsSameOrigin("null", "127.0.0.1:8080", false));
  EXPECT_FALSE(IsSameOrigin("", "127.0.0.1:8080", false));
  EXPECT_FALSE(IsSameOrigin("http://", "", false));
  EXPECT_FALSE(IsSameOrigin("http://127.0.0.1:8080/", "127.0.0.1:8080", false));
  EXPECT_FALSE(
      IsSameOrigin("http://u@127.0.0.1:8080", "u@127.0.0.1:8080", false));
  // A suffix or prefix of the host is not the host.
  EXPECT_FALSE(IsSameOrigin("http://a.rf.example", "rf.example", false));
  EXPECT_FALSE(IsSameOrigin("http://rf.example", "rf.example.evil", false));
}

}  // namespace
}  // namespace ringfence
