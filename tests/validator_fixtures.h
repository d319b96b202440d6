// Fixtures shared by the content validation tests (validate_test.cc,
// external_validator_test.cc).
#pragma once

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "ringfence/external_validator.h"
#include "ringfence/validate.h"

namespace ringfence::testing_content {

// A file of tests/testdata/content.
inline std::string TestDataPath(absl::string_view name) {
  return absl::StrCat(RINGFENCE_TESTDATA_DIR, "/content/", name);
}

// A finding with `code` whose message matches `message`.
template <typename M>
inline auto FindingIs(absl::string_view code, M message) {
  return ::testing::AllOf(
      ::testing::Field("code", &Finding::code,
                       ::testing::Eq(std::string(code))),
      ::testing::Field("message", &Finding::message, message));
}

// A vendor validator running tests/testdata/content/`script` with /bin/sh.
inline ExternalValidatorOptions ScriptOptions(absl::string_view script) {
  ExternalValidatorOptions o;
  o.name = "vendor-parser";
  o.argv = {"/bin/sh", TestDataPath(script)};
  o.timeout = absl::Seconds(10);
  o.memory_limit_bytes = 256 << 20;
  return o;
}

}  // namespace ringfence::testing_content
