// Test matchers for absl::Status / absl::StatusOr (the installed Abseil has
// none).
#pragma once

#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace ringfence::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// StatusIs(code, message_matcher): matches a Status or StatusOr with `code`
// whose message matches `message_matcher`.
MATCHER_P2(StatusIs, code, message_matcher,
           "status code " + ::testing::PrintToString(code)) {
  const absl::Status& s = ::ringfence::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(
             message_matcher, std::string(s.message()), result_listener);
}

// StatusIs(code): matches a Status or StatusOr with `code`, any message.
MATCHER_P(StatusIs, code, "status code " + ::testing::PrintToString(code)) {
  const absl::Status& s = ::ringfence::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code;
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = ::ringfence::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.ok();
}

}  // namespace ringfence::testing

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::ringfence::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::ringfence::testing::IsOk())
