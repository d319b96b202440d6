// Tests of external (vendor) content validators (external_validator.h):
// processes fed the payload on stdin, their findings, and every way they
// can fail (crash, hang, garbage, too much output, memory limit).
#include "ringfence/external_validator.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/content.h"
#include "ringfence/validate.h"
#include "status_matchers.h"
#include "validator_fixtures.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::ringfence::testing_content::FindingIs;
using ::ringfence::testing_content::ScriptOptions;
using ::ringfence::testing_content::TestDataPath;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<Finding> RunScript(const ExternalValidatorOptions& options,
                               absl::string_view payload) {
  absl::StatusOr<ContentValidatorPtr> v = NewExternalValidator(options);
  EXPECT_OK(v);
  if (!v.ok()) return {};
  absl::StatusOr<std::vector<Finding>> findings = (*v)->Validate(payload);
  EXPECT_OK(findings);
  return findings.ok() ? *std::move(findings) : std::vector<Finding>();
}

auto ValidatorFailed(absl::string_view message_part) {
  return ElementsAre(
      AllOf(Field(&Finding::code, codes::kValidatorFailed),
            Field(&Finding::severity, Severity::kError),
            Field(&Finding::source, "vendor-parser"),
            Field(&Finding::message, HasSubstr(std::string(message_part)))));
}

TEST(ExternalValidator, ParsesFindingsAndReadsThePayloadFromStdin) {
  EXPECT_THAT(RunScript(ScriptOptions("ok_validator.sh"), "0123456789"),
              ElementsAre(AllOf(FindingIs("VENDOR_NOTE", "parsed 10 bytes"),
                                Field(&Finding::severity, Severity::kWarning),
                                Field(&Finding::instance, "cf291-i7"),
                                Field(&Finding::field, "wildcard_21"),
                                Field(&Finding::source, "vendor-parser"))));
}

TEST(ExternalValidator, ReportsItsErrorFindings) {
  EXPECT_THAT(RunScript(ScriptOptions("reject_validator.sh"), "payload"),
              ElementsAre(AllOf(
                  FindingIs("OFFSET_OUT_OF_RANGE",
                            "input 21 read at offset 160 of a 160-byte array"),
                  Field(&Finding::severity, Severity::kError))));
}

TEST(ExternalValidator, RunsAnExecutableDirectlyAndNamesItByDefault) {
  ExternalValidatorOptions o;
  o.argv = {TestDataPath("ok_validator.sh")};
  absl::StatusOr<ContentValidatorPtr> v = NewExternalValidator(o);
  ASSERT_OK(v);
  EXPECT_EQ((*v)->name(), "ok_validator.sh");
  absl::StatusOr<std::vector<Finding>> findings = (*v)->Validate("abc");
  ASSERT_OK(findings);
  EXPECT_THAT(*findings,
              ElementsAre(AllOf(FindingIs("VENDOR_NOTE", "parsed 3 bytes"),
                                Field(&Finding::source, "ok_validator.sh"))));
}

TEST(ExternalValidator, LooksUpBareNamesInPath) {
  ExternalValidatorOptions o = ScriptOptions("ok_validator.sh");
  o.argv[0] = "sh";
  EXPECT_THAT(RunScript(o, "ab"),
              ElementsAre(FindingIs("VENDOR_NOTE", "parsed 2 bytes")));
}

TEST(ExternalValidator, ACrashIsARejection) {
  EXPECT_THAT(RunScript(ScriptOptions("crash_validator.sh"), "payload"),
              ValidatorFailed("validator \"vendor-parser\" crashed: killed by "
                              "signal 11 (SIGSEGV)"));
}

TEST(ExternalValidator, AHangIsARejection) {
  ExternalValidatorOptions o = ScriptOptions("hang_validator.sh");
  o.timeout = absl::Seconds(1);
  const absl::Time start = absl::Now();
  EXPECT_THAT(RunScript(o, "payload"),
              ValidatorFailed("validator \"vendor-parser\" did not finish "
                              "within 1s and was killed; a validator that "
                              "hangs rejects the payload"));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Seconds(1));
  EXPECT_LT(took, absl::Seconds(3)) << "the sleeping grandchild was waited for";
}

TEST(ExternalValidator, GarbageOutputIsARejection) {
  EXPECT_THAT(
      RunScript(ScriptOptions("garbage_validator.sh"), "payload"),
      ValidatorFailed("validator \"vendor-parser\" printed output that is not "
                      "the findings JSON"));
  EXPECT_THAT(RunScript(ScriptOptions("garbage_validator.sh"), "payload"),
              ValidatorFailed("\"parsed OK, 7 instances, no problems\""));
}

TEST(ExternalValidator, NoOutputIsARejection) {
  ExternalValidatorOptions o = ScriptOptions("ok_validator.sh");
  o.argv = {"true"};
  EXPECT_THAT(RunScript(o, "payload"),
              ValidatorFailed("validator \"vendor-parser\" printed output that "
                              "is not the findings JSON"));
}

TEST(ExternalValidator, NonZeroExitIsARejectionQuotingStderr) {
  EXPECT_THAT(
      RunScript(ScriptOptions("exit_validator.sh"), "payload"),
      ValidatorFailed("validator \"vendor-parser\" exited with status 3 (0 "
                      "means it ran); stderr: \"parser: unsupported header "
                      "version 9\""));
}

TEST(ExternalValidator, MalformedFindingsAreARejection) {
  EXPECT_THAT(RunScript(ScriptOptions("bad_severity_validator.sh"), "p"),
              ValidatorFailed("validator \"vendor-parser\" printed findings[0] "
                              "with severity \"fatal\" (must be \"error\" or "
                              "\"warning\")"));
  EXPECT_THAT(RunScript(ScriptOptions("no_code_validator.sh"), "p"),
              ValidatorFailed("validator \"vendor-parser\" printed findings[0] "
                              "without a code"));
}

TEST(ExternalValidator, TooMuchOutputIsARejection) {
  ExternalValidatorOptions o = ScriptOptions("flood_validator.sh");
  o.max_output_bytes = 1000;
  EXPECT_THAT(RunScript(o, "p"),
              ValidatorFailed("validator \"vendor-parser\" wrote more than "
                              "1000 bytes to stdout"));
}

TEST(ExternalValidator, TheMemoryLimitApplies) {
  ExternalValidatorOptions o = ScriptOptions("memory_validator.sh");
  o.memory_limit_bytes = 64 << 20;
  o.timeout = absl::Seconds(20);
  const absl::Time start = absl::Now();
  EXPECT_THAT(RunScript(o, "p"),
              ValidatorFailed("validator \"vendor-parser\" exited with status "
                              "2 (0 means it ran); stderr: \"awk: run time "
                              "error: out of memory"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(ExternalValidator, AValidatorThatIgnoresALargePayloadStillAnswers) {
  // The write side gets EPIPE; that must neither kill the test with SIGPIPE
  // nor count as a failure.
  const std::string payload(8 << 20, 'x');
  EXPECT_THAT(RunScript(ScriptOptions("noread_validator.sh"), payload),
              IsEmpty());
}

TEST(ExternalValidator, ProcessesLeftBehindAreNotWaitedFor) {
  const absl::Time start = absl::Now();
  EXPECT_THAT(RunScript(ScriptOptions("background_validator.sh"), "p"),
              IsEmpty());
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(ExternalValidator, LargePayloadIsStreamedThrough) {
  const std::string payload(3 << 20, 'y');
  EXPECT_THAT(
      RunScript(ScriptOptions("ok_validator.sh"), payload),
      ElementsAre(FindingIs(
          "VENDOR_NOTE", absl::StrCat("parsed ", payload.size(), " bytes"))));
}

TEST(ExternalValidator, ACommandThatCannotStartIsARejection) {
  char dir_template[] = "/tmp/rf_validate_test_XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string path = absl::StrCat(dir_template, "/not_a_program");
  {
    std::ofstream out(path);
    out << "\x7f"
           "ELF garbage";
  }
  ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
  ExternalValidatorOptions o;
  o.name = "vendor-parser";
  o.argv = {path};
  EXPECT_THAT(RunScript(o, "p"),
              ValidatorFailed(absl::StrCat("validator \"vendor-parser\" could "
                                           "not be started: ",
                                           path, ": Exec format error")));
  ::unlink(path.c_str());
  ::rmdir(dir_template);
}

TEST(ExternalValidator, RejectsBadOptions) {
  ExternalValidatorOptions o;
  EXPECT_THAT(NewExternalValidator(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "argv: must name a command"));
  o.argv = {"/bin/sh"};
  o.timeout = absl::ZeroDuration();
  EXPECT_THAT(NewExternalValidator(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "timeout: must be > 0 (got 0)"));
  o.timeout = absl::Seconds(1);
  o.argv = {"/nonexistent/validator"};
  EXPECT_THAT(NewExternalValidator(o),
              StatusIs(absl::StatusCode::kNotFound,
                       "argv[0]: \"/nonexistent/validator\" is not an "
                       "executable file"));
  o.argv = {"ringfence-no-such-validator"};
  EXPECT_THAT(NewExternalValidator(o),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("is not an executable file in PATH")));
}

TEST(ExternalValidator, ConcurrentRunsAreIndependent) {
  absl::StatusOr<ContentValidatorPtr> v =
      NewExternalValidator(ScriptOptions("ok_validator.sh"));
  ASSERT_OK(v);
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::vector<Finding>> f =
          (*v)->Validate(std::string(1000 * (i + 1), 'z'));
      if (f.ok() && f->size() == 1) results[i] = (*f)[0].message;
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(results[i], absl::StrCat("parsed ", 1000 * (i + 1), " bytes"));
  }
}

}  // namespace
}  // namespace ringfence
