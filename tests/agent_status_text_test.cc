// AgentStatusText (service/agent/status_text.h): the status file
// ringfence-agent writes and `ringfence-agent status` prints.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/agent/status_text.h"

namespace ringfence::agent {
namespace {

using ::testing::HasSubstr;

// The status file is one "key value" per line whatever a server put in
// its error message (newlines, terminal escapes): a hostile or spoofed
// server cannot add lines to it.
TEST(AgentStatusTextTest, AServersMessageStaysOnItsLine) {
  AgentStatus status;
  status.running = "rel-a";
  status.last_error = absl::PermissionDeniedError(
      "denied\nrunning rel-forged\n\x1b[31mred\x1b[0m");
  status.last_error_at = absl::FromUnixSeconds(1764583200);
  const std::string text = AgentStatusText(status);
  const std::vector<std::string> lines =
      absl::StrSplit(text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 11u) << text;
  EXPECT_EQ(lines[1], "running rel-a");
  EXPECT_EQ(lines[8], "last_contact -");
  EXPECT_THAT(lines[9], HasSubstr("last_error PERMISSION_DENIED: denied"
                                  "\\nrunning rel-forged\\n\\x1b[31m"));
  EXPECT_EQ(lines[10], "last_error_at 2025-12-01T10:00:00Z");
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
}

}  // namespace
}  // namespace ringfence::agent
