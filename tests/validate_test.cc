// Tests of content validation (validate.h, content.h) and the release
// checker (release_check.h); external validators are in
// external_validator_test.cc.
#include "ringfence/validate.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
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
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "ringfence/content.h"
#include "ringfence/external_validator.h"
#include "ringfence/model.h"
#include "ringfence/release_check.h"
#include "ringfence/signing.h"
#include "status_matchers.h"
#include "validator_fixtures.h"

namespace ringfence {

// For readable failure output.
void PrintTo(const Finding& f, std::ostream* os) {
  *os << "{" << f.code << " " << SeverityName(f.severity) << " instance=\""
      << f.instance << "\" field=\"" << f.field << "\" #" << f.field_index
      << " agents=\"" << f.agents << "\" source=\"" << f.source << "\" "
      << f.message << "}";
}

namespace {

using ::ringfence::testing::StatusIs;
using ::ringfence::testing_content::FindingIs;
using ::ringfence::testing_content::ScriptOptions;
using ::ringfence::testing_content::TestDataPath;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// ---- Fixtures
// ----------------------------------------------------------------

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Parses with protobuf directly, so fixtures do not depend on the code under
// test.
template <typename T>
T ParseOrDie(absl::string_view text) {
  T message;
  if (!google::protobuf::TextFormat::ParseFromString(std::string(text),
                                                     &message)) {
    ADD_FAILURE() << "bad fixture: " << text;
  }
  return message;
}

template <typename T>
T LoadOrDie(absl::string_view name) {
  return ParseOrDie<T>(ReadFile(TestDataPath(name)));
}

ContentSchema Schema291() {
  return LoadOrDie<ContentSchema>("channel_291.schema.textproto");
}
CapabilityManifest Manifest291() {
  return LoadOrDie<CapabilityManifest>("capabilities.textproto");
}

// Release cf-291-0719 of `payload`, for agents [min, max).
Release Release291(const std::string& payload, const std::string& min,
                   const std::string& max) {
  Release release;
  release.set_id("cf-291-0719");
  release.set_content_type("channel-file/291");
  release.set_version("2024.07.19");
  const PayloadDigest digest = ComputeDigest(payload);
  release.set_digest_sha256(digest.sha256_hex);
  release.set_size_bytes(digest.size_bytes);
  release.mutable_targeting()->set_min_agent_version(min);
  release.mutable_targeting()->set_max_agent_version(max);
  return release;
}

auto HasCode(absl::string_view code) {
  return Contains(Field("code", &Finding::code, Eq(std::string(code))));
}

// A small schema whose fields cover every type, and two agent ranges:
// [1, 2) supplies 4 of t's 5 inputs, does not know template type u, BYTES or
// RANGE, and has tight limits; [2, 3) supports everything.
ContentSchema SmallSchema() {
  return ParseOrDie<ContentSchema>(R"pb(
    content_type: "test/small"
    types {
      name: "t"
      fields {
        name: "num"
        type: FIELD_TYPE_INTEGER
        min_value: 0
        max_value: 100
      }
      fields { name: "str" type: FIELD_TYPE_STRING max_length: 8 }
      fields { name: "pat" type: FIELD_TYPE_PATTERN max_length: 64 }
      fields { name: "raw" type: FIELD_TYPE_BYTES max_length: 4 }
      fields {
        name: "kind"
        type: FIELD_TYPE_ENUM
        enum_values: [ "a", "b" ]
      }
    }
    types {
      name: "u"
      fields { name: "x" type: FIELD_TYPE_INTEGER }
    }
  )pb");
}

CapabilityManifest SmallManifest() {
  return ParseOrDie<CapabilityManifest>(R"pb(
    agents {
      min_agent_version: "1"
      max_agent_version: "2"
      template_inputs { template_type: "t" inputs_supplied: 4 }
      supported_field_types: [
        FIELD_TYPE_INTEGER,
        FIELD_TYPE_STRING,
        FIELD_TYPE_PATTERN,
        FIELD_TYPE_ENUM
      ]
      supported_match_kinds: [
        MATCH_KIND_EXACT,
        MATCH_KIND_PATTERN,
        MATCH_KIND_WILDCARD
      ]
      limits {
        max_instances: 3
        max_pattern_program_size: 20
        max_file_bytes: 600
      }
    }
    agents {
      min_agent_version: "2"
      max_agent_version: "3"
      template_inputs { template_type: "t" inputs_supplied: 5 }
      template_inputs { template_type: "u" inputs_supplied: 1 }
      supported_field_types: [
        FIELD_TYPE_INTEGER,
        FIELD_TYPE_STRING,
        FIELD_TYPE_PATTERN,
        FIELD_TYPE_BYTES,
        FIELD_TYPE_ENUM
      ]
      supported_match_kinds: [
        MATCH_KIND_EXACT,
        MATCH_KIND_RANGE,
        MATCH_KIND_PATTERN,
        MATCH_KIND_WILDCARD
      ]
      limits {
        max_instances: 100
        max_pattern_program_size: 1000
        max_file_bytes: 100000
      }
    }
  )pb");
}

const AgentRange kOld{"1", "2"};  // [1, 2): the limited agents
const AgentRange kNew{"2", "3"};  // [2, 3): supports everything

ValidationReport ValidateSmall(absl::string_view content,
                               const std::optional<AgentRange>& targets) {
  absl::StatusOr<ValidationReport> report =
      ValidateContent(content, SmallSchema(), SmallManifest(), targets);
  EXPECT_OK(report);
  return report.ok() ? *std::move(report) : ValidationReport();
}

// ---- The regression: 21 fields, 20 inputs ----------------------------------

constexpr char kField21Message[] =
    "instance \"cf291-i7\": field 21 (\"wildcard_21\") of template type "
    "\"ipc_pipe_match\" is not supplied by agents [7.11, 7.12): they supply "
    "20 inputs, the content needs 21";

TEST(Regression21Fields, RejectedForAgentsSupplying20Inputs) {
  const std::string payload = ReadFile(TestDataPath("cf291_field21.textproto"));
  absl::StatusOr<ValidationReport> report = ValidateContent(
      payload, Schema291(), Manifest291(), AgentRange{"7.11", "7.12"});
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);
  // The precise finding, for the instance with a real criterion on field 21.
  EXPECT_THAT(report->findings,
              Contains(AllOf(Field(&Finding::code, codes::kFieldNotSupplied),
                             Field(&Finding::severity, Severity::kError),
                             Field(&Finding::instance, "cf291-i7"),
                             Field(&Finding::field, "wildcard_21"),
                             Field(&Finding::field_index, 21u),
                             Field(&Finding::agents, "[7.11, 7.12)"),
                             Field(&Finding::source, "schema"),
                             Field(&Finding::message, kField21Message))));
  // A wildcard needs the input too: an interpreter may still index it.
  EXPECT_THAT(report->findings,
              Contains(AllOf(Field(&Finding::code, codes::kFieldNotSupplied),
                             Field(&Finding::instance, "cf291-i1"))));
  int not_supplied = 0;
  for (const Finding& f : report->findings) {
    if (f.code == codes::kFieldNotSupplied) ++not_supplied;
    if (f.severity == Severity::kError) {
      EXPECT_EQ(f.code, codes::kFieldNotSupplied) << f.message;
    }
  }
  EXPECT_EQ(not_supplied, 7);  // every instance has a criterion on field 21
  // And the root cause, named once.
  EXPECT_THAT(
      report->findings,
      Contains(FindingIs(
          codes::kTemplateWiderThanInputs,
          "template type \"ipc_pipe_match\" defines 21 fields but agents "
          "[7.11, 7.12) supply 20 inputs: content must not use field 21 "
          "while they are targeted")));
}

TEST(Regression21Fields, AcceptedForAgentsSupplying21Inputs) {
  const std::string payload = ReadFile(TestDataPath("cf291_field21.textproto"));
  absl::StatusOr<ValidationReport> report = ValidateContent(
      payload, Schema291(), Manifest291(), AgentRange{"7.12", "8"});
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok);
  EXPECT_THAT(report->findings, IsEmpty());
}

TEST(Regression21Fields, BinaryEncodingGivesTheSameFindings) {
  const std::string text = ReadFile(TestDataPath("cf291_field21.textproto"));
  const std::string binary = ParseOrDie<ContentFile>(text).SerializeAsString();
  for (const AgentRange& targets :
       {AgentRange{"7.11", "7.12"}, AgentRange{"7.12", "8"}}) {
    absl::StatusOr<ValidationReport> from_text =
        ValidateContent(text, Schema291(), Manifest291(), targets);
    absl::StatusOr<ValidationReport> from_binary =
        ValidateContent(binary, Schema291(), Manifest291(), targets);
    ASSERT_OK(from_text);
    ASSERT_OK(from_binary);
    EXPECT_EQ(from_text->ok, from_binary->ok);
    ASSERT_EQ(from_text->findings.size(), from_binary->findings.size());
    for (size_t i = 0; i < from_text->findings.size(); ++i) {
      EXPECT_EQ(from_text->findings[i].message,
                from_binary->findings[i].message);
    }
  }
}

TEST(Regression21Fields, TargetingBothRangesRejectsOnlyForTheOldOne) {
  const std::string payload = ReadFile(TestDataPath("cf291_field21.textproto"));
  absl::StatusOr<ValidationReport> report = ValidateContent(
      payload, Schema291(), Manifest291(), AgentRange{"7.11", "8"});
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);
  EXPECT_THAT(report->findings,
              Contains(FindingIs(codes::kFieldNotSupplied, kField21Message)));
  for (const Finding& f : report->findings) {
    EXPECT_EQ(f.agents, "[7.11, 7.12)") << f.message;
  }
}

TEST(Regression21Fields, OfflineCheckUsesEveryManifestEntry) {
  const std::string payload = ReadFile(TestDataPath("cf291_field21.textproto"));
  absl::StatusOr<ValidationReport> report =
      ValidateContent(payload, Schema291(), Manifest291(), std::nullopt);
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);
  EXPECT_THAT(report->findings,
              Contains(FindingIs(codes::kFieldNotSupplied, kField21Message)));
}

TEST(Regression21Fields, TheTestFileOnlyWarnsThatField21IsNeverExercised) {
  const std::string payload =
      ReadFile(TestDataPath("cf291_wildcard21.textproto"));
  absl::StatusOr<ValidationReport> report = ValidateContent(
      payload, Schema291(), Manifest291(), AgentRange{"7.12", "8"});
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok);
  EXPECT_THAT(
      report->findings,
      ElementsAre(
          AllOf(FindingIs(codes::kWildcardOnlyField,
                          "field 21 (\"wildcard_21\") of template type "
                          "\"ipc_pipe_match\" only ever appears with wildcard "
                          "criteria (3 instances): no instance in this file "
                          "exercises it"),
                Field(&Finding::severity, Severity::kWarning),
                Field(&Finding::field, "wildcard_21"),
                Field(&Finding::field_index, 21u))));
}

TEST(Regression21Fields, ReleaseCheckerRejectsWithFailedPrecondition) {
  const std::string payload = ReadFile(TestDataPath("cf291_field21.textproto"));
  absl::StatusOr<std::unique_ptr<ReleaseChecker>> checker =
      ReleaseChecker::Create({});
  ASSERT_OK(checker);
  ASSERT_OK((*checker)->AddContentType(Schema291(), Manifest291()));

  Release release = Release291(payload, "7.11", "7.12");

  absl::StatusOr<ValidationReport> report = (*checker)->Check(release, payload);
  ASSERT_OK(report);
  const absl::Status rejected = RejectionStatus(*report);
  EXPECT_THAT(rejected, StatusIs(absl::StatusCode::kFailedPrecondition,
                                 AllOf(HasSubstr("content rejected: 7 errors: "
                                                 "FIELD_NOT_SUPPLIED: "),
                                       HasSubstr(kField21Message))));
  std::optional<ValidationReport> carried = ReportFromStatus(rejected);
  ASSERT_TRUE(carried.has_value());
  EXPECT_FALSE(carried->ok);
  EXPECT_THAT(carried->findings,
              Contains(FindingIs(codes::kFieldNotSupplied, kField21Message)));

  release.mutable_targeting()->set_min_agent_version("7.12");
  release.mutable_targeting()->set_max_agent_version("8");
  report = (*checker)->Check(release, payload);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok);
  EXPECT_OK(RejectionStatus(*report));
}

// ---- One test per finding code
// ------------------------------------------------

struct CodeCase {
  std::string name;
  std::string content;
  std::optional<AgentRange> targets;
  std::string code;
  Severity severity;
  std::string message;  // expected exactly
  std::string instance;
  std::string field;
};

void PrintTo(const CodeCase& c, std::ostream* os) { *os << c.name; }

class FindingCodeTest : public ::testing::TestWithParam<CodeCase> {};

TEST_P(FindingCodeTest, ReportsTheFinding) {
  const CodeCase& c = GetParam();
  const ValidationReport report = ValidateSmall(c.content, c.targets);
  EXPECT_THAT(report.findings,
              Contains(AllOf(FindingIs(c.code, c.message),
                             Field(&Finding::severity, c.severity),
                             Field(&Finding::instance, c.instance),
                             Field(&Finding::field, c.field))));
  EXPECT_EQ(report.ok, c.severity == Severity::kWarning);
}

std::string Padded(int bytes) {
  std::string s = R"pb(instances {
                         id: "a"
                         template_type: "t"
                         criteria { field: 1 exact_int: 1 }
                       })pb";
  s += "\n#";
  s.append(bytes - s.size() - 1, 'x');
  s += "\n";
  return s;
}

std::string Instances(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(
        &s, "instances { id: \"i", i,
        "\" template_type: \"t\" criteria { field: 1 exact_int: ", i, " } }\n");
  }
  return s;
}

// One instance of `type` with id `id`.
std::string One(absl::string_view criteria, absl::string_view type = "t",
                absl::string_view id = "a") {
  return absl::StrCat("instances { id: \"", id, "\" template_type: \"", type,
                      "\" ", criteria, " }\n");
}

const Severity kE = Severity::kError;
const Severity kW = Severity::kWarning;

INSTANTIATE_TEST_SUITE_P(
    Codes, FindingCodeTest,
    ::testing::Values(
        CodeCase{"ParseErrorText", "instances { bogus: 1 }", kNew,
                 codes::kParseError, kE,
                 "not a text-format ContentFile (line 1, column 18: Message "
                 "type \"ringfence.content.v1.TemplateInstance\" has no field "
                 "named \"bogus\".) nor a binary one",
                 "", ""},
        CodeCase{"ParseErrorBinary", std::string("\xff\xfe\x00\x01", 4), kNew,
                 codes::kParseError, kE,
                 "not a binary ContentFile (and, not being UTF-8, not a "
                 "text-format one)",
                 "", ""},
        CodeCase{"FileTooLarge", Padded(700), kOld, codes::kFileTooLarge, kE,
                 "the file is 700 bytes; agents [1, 2) accept at most 600", "",
                 ""},
        CodeCase{"TooManyInstances", Instances(4), kOld,
                 codes::kTooManyInstances, kE,
                 "the file has 4 instances; agents [1, 2) load at most 3", "",
                 ""},
        CodeCase{"InstanceIdEmpty",
                 "instances { template_type: \"t\" criteria { field: 1 "
                 "exact_int: 1 } }",
                 kNew, codes::kInstanceIdInvalid, kE,
                 "instances[0]: the id must not be empty", "", ""},
        CodeCase{"DuplicateInstance",
                 One("criteria { field: 1 exact_int: 1 }") +
                     One("criteria { field: 1 exact_int: 2 }"),
                 kNew, codes::kDuplicateInstance, kE,
                 "instance \"a\": instances[1] reuses the id of instances[0]",
                 "a", ""},
        CodeCase{"UnknownTemplateType",
                 One("criteria { field: 1 exact_int: 1 }", "nope"), kNew,
                 codes::kUnknownTemplateType, kE,
                 "instance \"a\": template type \"nope\" is not defined by "
                 "the schema of content type \"test/small\"",
                 "a", ""},
        CodeCase{"FieldIndexBeyondSchema",
                 One("criteria { field: 6 exact_int: 1 }"), kNew,
                 codes::kFieldIndexOutOfSchema, kE,
                 "instance \"a\": criteria[0] is on field 6, but template "
                 "type \"t\" has 5 fields (1..5)",
                 "a", ""},
        CodeCase{"FieldIndexZero", One("criteria { exact_int: 1 }"), kNew,
                 codes::kFieldIndexOutOfSchema, kE,
                 "instance \"a\": criteria[0] is on field 0, but template "
                 "type \"t\" has 5 fields (1..5)",
                 "a", ""},
        CodeCase{"DuplicateCriterion",
                 One("criteria { field: 1 exact_int: 1 } "
                     "criteria { field: 1 exact_int: 2 }"),
                 kNew, codes::kDuplicateCriterion, kE,
                 "instance \"a\": field 1 (\"num\") has more than one "
                 "criterion (criteria[1] repeats it)",
                 "a", "num"},
        CodeCase{"CriterionWithoutMatch", One("criteria { field: 1 }"), kNew,
                 codes::kCriterionInvalid, kE,
                 "instance \"a\": the criterion on field 1 (\"num\") sets no "
                 "match (exact_string, exact_int, exact_bytes, range, pattern "
                 "or wildcard)",
                 "a", "num"},
        CodeCase{"EmptyRange",
                 One("criteria { field: 1 range { lo: 5 hi: 1 } }"), kNew,
                 codes::kCriterionInvalid, kE,
                 "instance \"a\": field 1 (\"num\"): the range [5, 1] is "
                 "empty (lo > hi)",
                 "a", "num"},
        CodeCase{"TypeMismatchPatternOnInteger",
                 One("criteria { field: 1 pattern: \"[0-9]+\" }"), kNew,
                 codes::kTypeMismatch, kE,
                 "instance \"a\": field 1 (\"num\") is INTEGER but the "
                 "criterion is a pattern",
                 "a", "num"},
        CodeCase{"TypeMismatchIntegerOnString",
                 One("criteria { field: 2 exact_int: 7 }"), kNew,
                 codes::kTypeMismatch, kE,
                 "instance \"a\": field 2 (\"str\") is STRING but the "
                 "criterion is an exact integer",
                 "a", "str"},
        CodeCase{"IntegerOutOfRange",
                 One("criteria { field: 1 exact_int: 101 }"), kNew,
                 codes::kConstraintViolated, kE,
                 "instance \"a\": field 1 (\"num\"): 101 is outside [0, 100]",
                 "a", "num"},
        CodeCase{"RangeEndOutOfRange",
                 One("criteria { field: 1 range { lo: 5 hi: 200 } }"), kNew,
                 codes::kConstraintViolated, kE,
                 "instance \"a\": field 1 (\"num\"): range end 200 is outside "
                 "[0, 100]",
                 "a", "num"},
        CodeCase{"StringTooLong",
                 One("criteria { field: 2 exact_string: \"123456789\" }"), kNew,
                 codes::kConstraintViolated, kE,
                 "instance \"a\": field 2 (\"str\"): the value is 9 bytes, the "
                 "field allows at most 8",
                 "a", "str"},
        CodeCase{"BytesTooLong",
                 One("criteria { field: 4 exact_bytes: \"\\x01\\x02\\x03\\x04"
                     "\\x05\" }"),
                 kNew, codes::kConstraintViolated, kE,
                 "instance \"a\": field 4 (\"raw\"): the value is 5 bytes, the "
                 "field allows at most 4",
                 "a", "raw"},
        CodeCase{"EnumValueUnknown",
                 One("criteria { field: 5 exact_string: \"c\" }"), kNew,
                 codes::kConstraintViolated, kE,
                 "instance \"a\": field 5 (\"kind\"): \"c\" is not one of its "
                 "values [\"a\", \"b\"]",
                 "a", "kind"},
        CodeCase{"PatternInvalid", One("criteria { field: 3 pattern: \"(\" }"),
                 kNew, codes::kPatternInvalid, kE,
                 "instance \"a\": field 3 (\"pat\"): RE2 cannot compile the "
                 "pattern \"(\": missing ): (",
                 "a", "pat"},
        CodeCase{"PatternProgramTooLarge",
                 One("criteria { field: 3 pattern: \"[a-z]{30}\" }"), kOld,
                 codes::kPatternTooLarge, kE,
                 "instance \"a\": field 3 (\"pat\"): the pattern compiles to "
                 "an RE2 program of size 34; agents [1, 2) allow at most 20",
                 "a", "pat"},
        CodeCase{"PatternTooLargeForRe2",
                 One("criteria { field: 3 pattern: \"\\\\pL{1000}\" }"), kNew,
                 codes::kPatternTooLarge, kE,
                 "instance \"a\": field 3 (\"pat\"): the pattern "
                 "\"\\\\pL{1000}\" is too large for RE2 to compile: pattern "
                 "too large - compile failed",
                 "a", "pat"},
        CodeCase{"FieldNotSupplied",
                 One("criteria { field: 5 exact_string: \"a\" }"), kOld,
                 codes::kFieldNotSupplied, kE,
                 "instance \"a\": field 5 (\"kind\") of template type \"t\" is "
                 "not supplied by agents [1, 2): they supply 4 inputs, the "
                 "content needs 5",
                 "a", "kind"},
        CodeCase{"TemplateTypeUnsupported",
                 One("criteria { field: 1 exact_int: 1 }", "u"), kOld,
                 codes::kTemplateTypeUnsupported, kE,
                 "instance \"a\": template type \"u\" is not supported by "
                 "agents [1, 2): their capability manifest entry declares no "
                 "inputs for it",
                 "a", ""},
        CodeCase{"MatchKindUnsupported",
                 One("criteria { field: 1 range { lo: 1 hi: 2 } }"), kOld,
                 codes::kMatchKindUnsupported, kE,
                 "instance \"a\": field 1 (\"num\"): agents [1, 2) do not "
                 "support RANGE criteria",
                 "a", "num"},
        CodeCase{"FieldTypeUnsupported",
                 One("criteria { field: 4 exact_bytes: \"\\x01\" }"), kOld,
                 codes::kFieldTypeUnsupported, kE,
                 "instance \"a\": field 4 (\"raw\") of template type \"t\" has "
                 "type BYTES, which agents [1, 2) do not understand",
                 "a", "raw"},
        CodeCase{"NoCapabilityAboveTheManifest",
                 One("criteria { field: 1 exact_int: 1 }"),
                 AgentRange{"2", "4"}, codes::kNoCapabilityForAgents, kE,
                 "agents [3, 4) are targeted but no capability manifest entry "
                 "covers them: nothing says they can consume this content",
                 "", ""},
        CodeCase{"NoCapabilityForAnyVersionBelow",
                 One("criteria { field: 1 exact_int: 1 }"), AgentRange{},
                 codes::kNoCapabilityForAgents, kE,
                 "agents < 1 are targeted but no capability manifest entry "
                 "covers them: nothing says they can consume this content",
                 "", ""},
        CodeCase{"NoCapabilityForAnyVersionAbove",
                 One("criteria { field: 1 exact_int: 1 }"), AgentRange{},
                 codes::kNoCapabilityForAgents, kE,
                 "agents >= 3 are targeted but no capability manifest entry "
                 "covers them: nothing says they can consume this content",
                 "", ""},
        CodeCase{"WildcardOnlyField",
                 One("criteria { field: 1 exact_int: 1 } "
                     "criteria { field: 2 wildcard {} }") +
                     R"pb(instances {
                            id: "b"
                            template_type: "t"
                            criteria {
                              field: 2
                              wildcard {}
                            }
                          })pb",
                 kNew, codes::kWildcardOnlyField, kW,
                 "field 2 (\"str\") of template type \"t\" only ever appears "
                 "with wildcard criteria (2 instances): no instance in this "
                 "file exercises it",
                 "", "str"},
        CodeCase{"TemplateWiderThanInputs",
                 One("criteria { field: 1 exact_int: 1 }"), kOld,
                 codes::kTemplateWiderThanInputs, kW,
                 "template type \"t\" defines 5 fields but agents [1, 2) "
                 "supply 4 inputs: content must not use field 5 while they "
                 "are targeted",
                 "", ""}),
    [](const ::testing::TestParamInfo<CodeCase>& info) {
      return info.param.name;
    });

TEST(ValidateContent, CleanFileHasNoFindings) {
  const ValidationReport report = ValidateSmall(
      One(R"pb(criteria {
                 field: 1
                 range { lo: 0 hi: 100 }
               }
               criteria { field: 2 exact_string: "svchost" }
               criteria { field: 3 pattern: "^[a-z]+$" }
               criteria { field: 4 exact_bytes: "\x01\x02" }
               criteria { field: 5 exact_string: "b" })pb") +
          One(R"pb(criteria { field: 1 exact_int: 3 })pb", "u", "b"),
      kNew);
  EXPECT_TRUE(report.ok);
  EXPECT_THAT(report.findings, IsEmpty());
}

TEST(ValidateContent, EmptyPayloadIsAnEmptyFile) {
  const ValidationReport report = ValidateSmall("", kNew);
  EXPECT_TRUE(report.ok);
  EXPECT_THAT(report.findings, IsEmpty());
}

TEST(ValidateContent, PayloadsOverTheParseLimitAreNotParsed) {
  const std::string huge(kMaxContentParseBytes + 1, ' ');
  const ValidationReport report = ValidateSmall(huge, kNew);
  EXPECT_FALSE(report.ok);
  EXPECT_THAT(report.findings,
              ElementsAre(FindingIs(
                  codes::kFileTooLarge,
                  absl::StrCat("the file is ", kMaxContentParseBytes + 1,
                               " bytes; ringfence does not parse files over ",
                               kMaxContentParseBytes, " bytes"))));
}

TEST(ValidateContent, NotSuppliedFieldSkipsTheOtherAgentChecks) {
  // Field 5 is not supplied to [1, 2): nothing else is reported about it for
  // those agents (no FIELD_TYPE/MATCH_KIND noise), while field 1's RANGE is.
  const ValidationReport report =
      ValidateSmall(One("criteria { field: 1 exact_int: 1 }") +
                        R"pb(instances {
                               id: "b"
                               template_type: "t"
                               criteria {
                                 field: 1
                                 range { lo: 0 hi: 1 }
                               }
                               criteria { field: 5 exact_string: "a" }
                             })pb",
                    kOld);
  EXPECT_THAT(report.findings, HasCode(codes::kFieldNotSupplied));
  EXPECT_THAT(report.findings, HasCode(codes::kMatchKindUnsupported));
  int for_field5 = 0;
  for (const Finding& f : report.findings) {
    if (f.field_index == 5) ++for_field5;
  }
  EXPECT_EQ(for_field5, 1);
}

TEST(ValidateContent, UnknownTemplateTypeSkipsItsCriteria) {
  const ValidationReport report =
      ValidateSmall(One("criteria { field: 99 pattern: \"(\" }", "nope"), kNew);
  EXPECT_THAT(report.findings,
              ElementsAre(Field(&Finding::code, codes::kUnknownTemplateType)));
}

TEST(ValidateContent, OfflineWithEmptyManifestHasNoCapability) {
  absl::StatusOr<ValidationReport> report =
      ValidateContent(One("criteria { field: 1 exact_int: 1 }"), SmallSchema(),
                      CapabilityManifest(), std::nullopt);
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);
  EXPECT_THAT(report->findings,
              ElementsAre(FindingIs(
                  codes::kNoCapabilityForAgents,
                  "the capability manifest has no entries: nothing says any "
                  "agent can consume this content")));
}

TEST(ValidateContent, CoverageAcceptsAdjacentEntriesAndEquivalentVersions) {
  // [1, 2) and [2, 3) together cover [1.0.0, 3): no gap at 2.
  const ValidationReport report = ValidateSmall(
      One("criteria { field: 1 exact_int: 1 }"), AgentRange{"1.0.0", "3"});
  EXPECT_THAT(report.findings, Not(HasCode(codes::kNoCapabilityForAgents)));
}

TEST(ValidateContent, CoverageGapBetweenEntries) {
  CapabilityManifest manifest = SmallManifest();
  manifest.mutable_agents(1)->set_min_agent_version("2.5");
  absl::StatusOr<ValidationReport> report =
      ValidateContent(One("criteria { field: 1 exact_int: 1 }"), SmallSchema(),
                      manifest, AgentRange{"1", "3"});
  ASSERT_OK(report);
  EXPECT_THAT(
      report->findings,
      ElementsAre(FindingIs(codes::kNoCapabilityForAgents,
                            HasSubstr("agents [2, 2.5) are targeted")),
                  Field(&Finding::code, codes::kTemplateWiderThanInputs)));
}

TEST(ValidateContent, FindingsAreInAStableOrder) {
  const std::string content = ReadFile(TestDataPath("cf291_field21.textproto"));
  absl::StatusOr<ValidationReport> a = ValidateContent(
      content, Schema291(), Manifest291(), AgentRange{"7.11", "7.12"});
  absl::StatusOr<ValidationReport> b = ValidateContent(
      content, Schema291(), Manifest291(), AgentRange{"7.11", "7.12"});
  ASSERT_OK(a);
  ASSERT_OK(b);
  ASSERT_EQ(a->findings.size(), b->findings.size());
  for (size_t i = 0; i < a->findings.size(); ++i) {
    EXPECT_EQ(a->findings[i].message, b->findings[i].message);
  }
  EXPECT_EQ(a->findings.front().instance, "cf291-i1");
  EXPECT_EQ(a->findings.back().code, codes::kTemplateWiderThanInputs);
}

// ---- Configuration errors
// ------------------------------------------------------

TEST(ValidateContentSchema, AcceptsTheFixtures) {
  EXPECT_OK(ValidateContentSchema(Schema291()));
  EXPECT_OK(ValidateContentSchema(SmallSchema()));
  EXPECT_OK(ValidateCapabilityManifest(Manifest291()));
  EXPECT_OK(ValidateCapabilityManifest(SmallManifest()));
}

TEST(ValidateContentSchema, NamesTheOffendingField) {
  ContentSchema s = SmallSchema();
  s.mutable_types(1)->set_name("t");
  EXPECT_THAT(ValidateContentSchema(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "types[1].name: duplicate template type \"t\""));
  s = SmallSchema();
  s.mutable_types(0)->mutable_fields(4)->clear_enum_values();
  EXPECT_THAT(ValidateContentSchema(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "types[0].fields[4].enum_values: an ENUM field must "
                       "list its values"));
  s = SmallSchema();
  s.mutable_types(0)->mutable_fields(0)->set_min_value(200);
  EXPECT_THAT(ValidateContentSchema(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "types[0].fields[0].max_value: must be >= min_value "
                       "(200)"));
  s = SmallSchema();
  s.mutable_types(0)->mutable_fields(2)->set_name("num");
  EXPECT_THAT(ValidateContentSchema(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "types[0].fields[2].name: duplicate field \"num\""));
  s = SmallSchema();
  s.mutable_types(0)->mutable_fields(1)->clear_type();
  EXPECT_THAT(ValidateContentSchema(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "types[0].fields[1].type: must be set"));
  s = SmallSchema();
  s.clear_content_type();
  EXPECT_THAT(ValidateContentSchema(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "content_type: must not be empty"));
  s = SmallSchema();
  s.mutable_types(1)->clear_fields();
  EXPECT_THAT(ValidateContentSchema(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "types[1].fields: must define at least one field"));
}

TEST(ValidateCapabilityManifest, NamesTheOffendingField) {
  CapabilityManifest m = SmallManifest();
  m.mutable_agents(1)->set_min_agent_version("1.5");
  EXPECT_THAT(ValidateCapabilityManifest(m),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "agents[1]: agents [1.5, 3) overlap agents[0] (agents "
                       "[1, 2))"));
  m = SmallManifest();
  m.mutable_agents(0)->set_max_agent_version("seven");
  EXPECT_THAT(ValidateCapabilityManifest(m),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "agents[0].max_agent_version: must be a dotted version "
                       "like 7.11.0 (got \"seven\")"));
  m = SmallManifest();
  m.mutable_agents(0)->set_max_agent_version("1");
  EXPECT_THAT(ValidateCapabilityManifest(m),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "agents[0].max_agent_version: must be greater than "
                       "min_agent_version (1)"));
  m = SmallManifest();
  *m.mutable_agents(1)->add_template_inputs() = m.agents(1).template_inputs(0);
  EXPECT_THAT(ValidateCapabilityManifest(m),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "agents[1].template_inputs[2].template_type: duplicate "
                       "template type \"t\""));
  m = SmallManifest();
  m.mutable_agents(0)->clear_supported_match_kinds();
  EXPECT_THAT(ValidateCapabilityManifest(m),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "agents[0].supported_match_kinds: must list at least "
                       "one match kind"));
  m = SmallManifest();
  m.mutable_agents(0)->add_supported_field_types(
      content::v1::FIELD_TYPE_UNSPECIFIED);
  EXPECT_THAT(ValidateCapabilityManifest(m),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "agents[0].supported_field_types[4]: unknown field "
                       "type 0"));
}

TEST(ValidateContent, ConfigurationErrorsAreStatuses) {
  CapabilityManifest m = SmallManifest();
  m.set_content_type("other/type");
  EXPECT_THAT(ValidateContent("", SmallSchema(), m, kNew),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "capability manifest: content_type: \"other/type\" "
                       "differs from the schema's \"test/small\""));
  ContentSchema s = SmallSchema();
  s.clear_types();
  EXPECT_THAT(ValidateContent("", s, SmallManifest(), kNew),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "content schema: types: must define at least one "
                       "template type"));
  EXPECT_THAT(
      ValidateContent("", SmallSchema(), SmallManifest(), AgentRange{"3", "2"}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "target agents: the range [3, 2) is empty"));
  EXPECT_THAT(
      ValidateContent("", SmallSchema(), SmallManifest(), AgentRange{"x", ""}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "target agents: \"x\" is not a dotted version like "
               "7.11.0"));
}

// ---- Agent ranges and parsing
// -------------------------------------------------------

TEST(AgentRange, FormatAndParse) {
  EXPECT_EQ(FormatAgentRange({"7.11", "7.12"}), "[7.11, 7.12)");
  EXPECT_EQ(FormatAgentRange({"7.11", ""}), ">= 7.11");
  EXPECT_EQ(FormatAgentRange({"", "7.12"}), "< 7.12");
  EXPECT_EQ(FormatAgentRange({"", ""}), "of any version");
  for (absl::string_view text : {"7.11..7.12", " [7.11, 7.12) "}) {
    absl::StatusOr<AgentRange> r = ParseAgentRange(text);
    ASSERT_OK(r);
    EXPECT_EQ(r->min_version, "7.11");
    EXPECT_EQ(r->max_version, "7.12");
  }
  absl::StatusOr<AgentRange> open = ParseAgentRange("7.11..");
  ASSERT_OK(open);
  EXPECT_EQ(open->max_version, "");
  EXPECT_THAT(ParseAgentRange("7.11"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("expected MIN..MAX")));
  EXPECT_THAT(ParseAgentRange("7.12..7.11"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "agent range \"7.12..7.11\": MIN must be less than "
                       "MAX"));
  EXPECT_THAT(ParseAgentRange("a..b"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "agent range \"a..b\": \"a\" is not a dotted version "
                       "like 7.11.0"));
}

TEST(ParseContentFile, TextAndBinary) {
  const std::string text = One("criteria { field: 1 exact_int: 7 }");
  absl::StatusOr<ContentFile> from_text = ParseContentFile(text);
  ASSERT_OK(from_text);
  ASSERT_EQ(from_text->instances_size(), 1);
  EXPECT_EQ(from_text->instances(0).criteria(0).exact_int(), 7);
  absl::StatusOr<ContentFile> from_binary =
      ParseContentFile(from_text->SerializeAsString());
  ASSERT_OK(from_binary);
  EXPECT_EQ(from_binary->SerializeAsString(), from_text->SerializeAsString());
}

// Found by content_fuzz (CI): with an overlong length varint the payload
// is binary only, but its canonical re-encoding is all whitespace, which is
// also text (an empty file). Bytes with two readings are refused.
TEST(ParseContentFile, BytesThatAreBothTextAndBinaryAreRefused) {
  const std::string overlong("\n\x89\x00\t        ", 12);
  absl::StatusOr<ContentFile> binary = ParseContentFile(overlong);
  ASSERT_OK(binary);
  EXPECT_EQ(binary->instances_size(), 1);

  const std::string canonical = binary->SerializeAsString();
  ASSERT_EQ(canonical, "\n\t\t        ");
  EXPECT_THAT(ParseContentFile(canonical),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ambiguous payload")));
  // Validation reports it as a parse error, so the release is refused.
  absl::StatusOr<ValidationReport> report =
      ValidateContent(canonical, Schema291(), Manifest291(), std::nullopt);
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);

  // The advertised way out: no binary ContentFile starts with this line.
  absl::StatusOr<ContentFile> text =
      ParseContentFile(absl::StrCat("#format: text\n", canonical));
  ASSERT_OK(text);
  EXPECT_EQ(text->instances_size(), 0);
  // And bytes whose two readings agree are not ambiguous.
  EXPECT_OK(ParseContentFile(""));
}

// Found by content_fuzz (a 10-minute run): an escape in a text-format string
// field put a byte that is not UTF-8 into a pattern; the text was accepted,
// but the same file in binary is not. Text now refuses it too, naming the
// field.
TEST(ParseContentFile, StringFieldsMustBeUtf8InTextToo) {
  const std::string text =
      "instances { template_type: \"t\" criteria { field: 3 pattern: "
      "\"\\\\pSfi\\xed}\" } }\n";
  EXPECT_THAT(ParseContentFile(text),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("instances[0].criteria[0].pattern: not valid "
                                 "UTF-8")));
  // The same bytes in a bytes criterion are fine.
  absl::StatusOr<ContentFile> bytes = ParseContentFile(
      "instances { template_type: \"t\" criteria { field: 3 exact_bytes: "
      "\"\\xed\" } }\n");
  ASSERT_OK(bytes);
  EXPECT_EQ(bytes->instances(0).criteria(0).exact_bytes(), "\xed");
  // And validation reports the parse error as a finding, as for any
  // unparseable payload.
  absl::StatusOr<ValidationReport> report =
      ValidateContent(text, Schema291(), Manifest291(), std::nullopt);
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);
}

// ---- Reports and statuses
// ---------------------------------------------------------------

TEST(ValidationReport, ProtoRoundTripAndRejection) {
  ValidationReport report;
  EXPECT_OK(RejectionStatus(report));
  Finding w;
  w.code = codes::kWildcardOnlyField;
  w.severity = Severity::kWarning;
  w.message = "w";
  report.Add(w);
  EXPECT_TRUE(report.ok);
  EXPECT_OK(RejectionStatus(report));
  for (int i = 0; i < 12; ++i) {
    Finding e;
    e.code = "E";
    e.message = absl::StrCat("e", i);
    report.Add(e);
  }
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.errors(), 12);
  EXPECT_EQ(report.warnings(), 1);
  const absl::Status s = RejectionStatus(report);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition,
                          AllOf(HasSubstr("content rejected: 12 errors: E: e0; "
                                          "E: e1;"),
                                HasSubstr("E: e9; and 2 more"))));
  std::optional<ValidationReport> back = ReportFromStatus(s);
  ASSERT_TRUE(back.has_value());
  EXPECT_THAT(back->findings, SizeIs(13));
  EXPECT_EQ(back->findings[0].severity, Severity::kWarning);
  EXPECT_FALSE(ReportFromStatus(absl::InternalError("x")).has_value());
  EXPECT_EQ(FormatFinding(back->findings[1]), "error E: e0");
}

// ---- Pluggable validators
// -------------------------------------------------------------

// An in-process vendor validator.
class OffsetValidator : public ContentValidator {
 public:
  explicit OffsetValidator(absl::Status status) : status_(std::move(status)) {}
  std::string name() const override { return "offset-checker"; }
  absl::StatusOr<std::vector<Finding>> Validate(
      absl::string_view payload) const override {
    if (!status_.ok()) return status_;
    Finding f;
    f.code = "PAYLOAD_SIZE";
    f.severity = Severity::kWarning;
    f.message = absl::StrCat(payload.size(), " bytes");
    return std::vector<Finding>{f};
  }

 private:
  absl::Status status_;
};

TEST(RunValidators, CollectsFindingsAndTurnsErrorsIntoRejections) {
  OffsetValidator good(absl::OkStatus());
  OffsetValidator broken(absl::UnavailableError("license server down"));
  absl::StatusOr<ContentValidatorPtr> schema =
      NewSchemaValidator(SmallSchema(), SmallManifest(), kOld);
  ASSERT_OK(schema);
  const std::string payload = One("criteria { field: 5 exact_string: \"a\" }");
  const ValidationReport report =
      RunValidators({schema->get(), &good, &broken}, payload);
  EXPECT_FALSE(report.ok);
  EXPECT_THAT(
      report.findings,
      ElementsAre(
          AllOf(Field(&Finding::code, codes::kFieldNotSupplied),
                Field(&Finding::source, "schema")),
          AllOf(Field(&Finding::code, codes::kTemplateWiderThanInputs)),
          AllOf(
              FindingIs("PAYLOAD_SIZE", absl::StrCat(payload.size(), " bytes")),
              Field(&Finding::source, "offset-checker")),
          AllOf(FindingIs(codes::kValidatorFailed,
                          "validator \"offset-checker\" could not validate the "
                          "payload: UNAVAILABLE: license server down"),
                Field(&Finding::severity, Severity::kError),
                Field(&Finding::source, "offset-checker"))));
}

TEST(NewSchemaValidator, RejectsBadConfiguration) {
  EXPECT_THAT(NewSchemaValidator(ContentSchema(), SmallManifest(), kNew),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("content schema: content_type")));
}

// ---- The release checker
// ------------------------------------------------------------------

class ReleaseCheckerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<KeyPair> keys = GenerateKeyPair();
    ASSERT_OK(keys);
    keys_ = *keys;
    payload_ = One("criteria { field: 1 exact_int: 1 }");
    release_.set_id("small-1");
    release_.set_content_type("test/small");
    release_.set_version("1");
    const PayloadDigest d = ComputeDigest(payload_);
    release_.set_digest_sha256(d.sha256_hex);
    release_.set_size_bytes(d.size_bytes);
    release_.mutable_targeting()->set_min_agent_version("2");
    release_.mutable_targeting()->set_max_agent_version("3");
  }

  std::unique_ptr<ReleaseChecker> Checker(
      bool require_signature,
      std::vector<ContentValidatorPtr> validators = {}) {
    ReleaseCheckOptions options;
    options.trusted_keys = {{"publisher-1", keys_.public_pem}};
    options.require_signature = require_signature;
    absl::StatusOr<std::unique_ptr<ReleaseChecker>> checker =
        ReleaseChecker::Create(options);
    EXPECT_OK(checker);
    EXPECT_OK((*checker)->AddContentType(SmallSchema(), SmallManifest(),
                                         std::move(validators)));
    return *std::move(checker);
  }

  void Sign() {
    absl::StatusOr<std::string> sig =
        SignRelease(release_, keys_.private_pem, "publisher-1");
    ASSERT_OK(sig);
    release_.set_signature(*sig);
  }

  KeyPair keys_;
  std::string payload_;
  Release release_;
};

TEST_F(ReleaseCheckerTest, SignedValidReleasePasses) {
  Sign();
  absl::StatusOr<ValidationReport> report =
      Checker(true)->Check(release_, payload_);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok);
  EXPECT_THAT(report->findings, IsEmpty());
}

TEST_F(ReleaseCheckerTest, TamperedPayloadIsRejectedFirst) {
  Sign();
  std::string tampered = payload_;
  tampered[tampered.size() - 3] = '2';  // exact_int: 1 -> 2, same size
  EXPECT_THAT(
      Checker(true)->Check(release_, tampered),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr(absl::StrCat(
                   "digest_sha256: release \"small-1\" records \"",
                   release_.digest_sha256(), "\", the payload hashes to ",
                   ComputeDigest(tampered).sha256_hex))));
  EXPECT_THAT(Checker(true)->Check(release_, payload_ + " "),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("size_bytes: release \"small-1\" records")));
}

TEST_F(ReleaseCheckerTest, UnsignedAlteredOrUnknownKeyIsRejected) {
  EXPECT_THAT(Checker(true)->Check(release_, payload_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is unsigned")));
  EXPECT_OK(Checker(false)->Check(release_, payload_));
  Sign();
  Release altered = release_;
  altered.set_version("2");
  EXPECT_THAT(Checker(false)->Check(altered, payload_),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("does not match its signature")));
  absl::StatusOr<std::string> other =
      SignRelease(release_, keys_.private_pem, "someone-else");
  ASSERT_OK(other);
  altered = release_;
  altered.set_signature(*other);
  EXPECT_THAT(Checker(false)->Check(altered, payload_),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("not a trusted publisher key")));
}

TEST_F(ReleaseCheckerTest, ContentFindingsAndVendorValidatorsReject) {
  Sign();
  std::vector<ContentValidatorPtr> validators;
  ExternalValidatorOptions o = ScriptOptions("crash_validator.sh");
  absl::StatusOr<ContentValidatorPtr> crash = NewExternalValidator(o);
  ASSERT_OK(crash);
  validators.push_back(*std::move(crash));
  absl::StatusOr<ValidationReport> report =
      Checker(true, std::move(validators))->Check(release_, payload_);
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);
  EXPECT_THAT(
      report->findings,
      ElementsAre(FindingIs(codes::kValidatorFailed,
                            HasSubstr("crashed: killed by signal 11"))));

  // Targeting agents the manifest does not cover.
  release_.mutable_targeting()->set_max_agent_version("4");
  Sign();
  report = Checker(true)->Check(release_, payload_);
  ASSERT_OK(report);
  EXPECT_THAT(report->findings,
              ElementsAre(FindingIs(
                  codes::kNoCapabilityForAgents,
                  HasSubstr("agents [3, 4) are targeted but no capability "
                            "manifest entry covers them"))));
}

TEST_F(ReleaseCheckerTest, ContentTypesWithoutRules) {
  release_.set_content_type("other/type");
  absl::StatusOr<ValidationReport> report =
      Checker(false)->Check(release_, payload_);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok);

  ReleaseCheckOptions options;
  options.require_content_rules = true;
  absl::StatusOr<std::unique_ptr<ReleaseChecker>> strict =
      ReleaseChecker::Create(options);
  ASSERT_OK(strict);
  EXPECT_FALSE((*strict)->HasContentType("other/type"));
  EXPECT_THAT((*strict)->Check(release_, payload_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "content_type: no schema and capability manifest are "
                       "configured for \"other/type\", and content must be "
                       "validated before release"));
}

TEST_F(ReleaseCheckerTest, ConfigurationErrors) {
  std::unique_ptr<ReleaseChecker> checker = Checker(false);
  EXPECT_TRUE(checker->HasContentType("test/small"));
  EXPECT_THAT(checker->AddContentType(SmallSchema(), SmallManifest()),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "content type \"test/small\" already has a schema and "
                       "capability manifest"));
  ContentSchema bad = SmallSchema();
  bad.set_content_type("bad/type");
  bad.mutable_types(0)->mutable_fields(0)->clear_type();
  EXPECT_THAT(checker->AddContentType(bad, SmallManifest()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "content schema: types[0].fields[0].type: must be "
                       "set"));
  ReleaseCheckOptions options;
  options.trusted_keys = {{"k", "not a key"}};
  EXPECT_THAT(ReleaseChecker::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("trusted_keys[\"k\"]: not an Ed25519 public "
                                 "key")));
  Release invalid = release_;
  invalid.set_id("");
  EXPECT_THAT(
      checker->Check(invalid, payload_),
      StatusIs(absl::StatusCode::kInvalidArgument, "id: must not be empty"));
}

TEST_F(ReleaseCheckerTest, WithoutPayloadOnlyForContentTypesWithoutRules) {
  std::unique_ptr<ReleaseChecker> checker = Checker(false);
  EXPECT_THAT(checker->CheckWithoutPayload(release_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("payload: required: content type "
                                 "\"test/small\" has a schema and "
                                 "capability manifest")));
  Release other = release_;
  other.set_content_type("other/type");
  EXPECT_OK(checker->CheckWithoutPayload(other));
  // The metadata and signature checks still apply.
  other.set_digest_sha256("nope");
  EXPECT_THAT(
      checker->CheckWithoutPayload(other),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("digest_sha256")));
  std::unique_ptr<ReleaseChecker> signing = Checker(true);
  other.set_digest_sha256(release_.digest_sha256());
  EXPECT_THAT(
      signing->CheckWithoutPayload(other),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("signature")));

  ReleaseCheckOptions options;
  options.require_content_rules = true;
  absl::StatusOr<std::unique_ptr<ReleaseChecker>> strict =
      ReleaseChecker::Create(options);
  ASSERT_OK(strict);
  EXPECT_THAT((*strict)->CheckWithoutPayload(other),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("content_type: no schema")));
}

// ---- Content rules files
// ---------------------------------------------------------

class ContentRulesFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(
        ::testing::TempDir(), "/rules-",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = absl::StrCat(dir_, "/", name);
    std::ofstream(path) << text;
    return path;
  }

  std::string dir_;
};

TEST(ContentRulesFile, TheFixtureRejectsThe21stFieldAndRunsTheVendorParser) {
  absl::StatusOr<std::unique_ptr<ReleaseChecker>> checker =
      NewReleaseCheckerFromFile(TestDataPath("rules.textproto"), {});
  ASSERT_OK(checker);
  EXPECT_TRUE((*checker)->HasContentType("channel-file/291"));

  const std::string payload = ReadFile(TestDataPath("cf291_field21.textproto"));
  Release release = Release291(payload, "7.11", "7.12");
  absl::StatusOr<ValidationReport> report = (*checker)->Check(release, payload);
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);
  EXPECT_THAT(report->findings,
              Contains(FindingIs(codes::kFieldNotSupplied, kField21Message)));
  // The vendor validator ran (relative path resolved against the file) and
  // read the whole payload.
  EXPECT_THAT(report->findings,
              Contains(AllOf(
                  Field(&Finding::code, "VENDOR_NOTE"),
                  Field(&Finding::source, "vendor-parser"),
                  Field(&Finding::message,
                        absl::StrCat("parsed ", payload.size(), " bytes")))));

  release.mutable_targeting()->set_min_agent_version("7.12");
  release.mutable_targeting()->set_max_agent_version("8");
  report = (*checker)->Check(release, payload);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok);
}

TEST_F(ContentRulesFileTest, ErrorsNameTheFileAndTheField) {
  const std::string schema = TestDataPath("channel_291.schema.textproto");
  const std::string caps = TestDataPath("capabilities.textproto");
  struct Case {
    std::string text;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"content_types { capabilities_file: \"" + caps + "\" }",
       absl::StatusCode::kInvalidArgument,
       "content_types[0].schema_file: required"},
      {"content_types { schema_file: \"" + schema + "\" }",
       absl::StatusCode::kInvalidArgument,
       "content_types[0].capabilities_file: required"},
      {"content_types { schema_file: \"missing.textproto\" "
       "capabilities_file: \"" +
           caps + "\" }",
       absl::StatusCode::kNotFound, "content_types[0].schema_file: "},
      {"content_types { schema_file: \"" + schema + "\" capabilities_file: \"" +
           caps + "\" external_validators { timeout_seconds: 1 } }",
       absl::StatusCode::kInvalidArgument,
       "content_types[0].external_validators[0].argv: must not be empty"},
      {"content_types { schema_file: \"" + schema + "\" capabilities_file: \"" +
           caps + "\" external_validators { argv: \"./nope.sh\" } }",
       absl::StatusCode::kNotFound,
       "content_types[0].external_validators[0]: "},
      {"content_types { schema_file: \"" + schema + "\" capabilities_file: \"" +
           caps + "\" } content_types { schema_file: \"" + schema +
           "\" capabilities_file: \"" + caps + "\" }",
       absl::StatusCode::kInvalidArgument,
       "content_types[1]: content type \"channel-file/291\" already has"},
      {"content_typo {}", absl::StatusCode::kInvalidArgument, "content_typo"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path =
        Write(absl::StrCat("rules", i, ".textproto"), cases[i].text);
    EXPECT_THAT(NewReleaseCheckerFromFile(path, {}),
                StatusIs(cases[i].code,
                         AllOf(HasSubstr(path), HasSubstr(cases[i].message))))
        << cases[i].text;
  }
  EXPECT_THAT(NewReleaseCheckerFromFile(dir_ + "/absent.textproto", {}),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ContentRulesFileTest, RequireContentRulesIsOredIntoTheOptions) {
  const std::string path =
      Write("strict.textproto", "require_content_rules: true");
  absl::StatusOr<std::unique_ptr<ReleaseChecker>> checker =
      NewReleaseCheckerFromFile(path, {});
  ASSERT_OK(checker);
  Release release;
  release.set_id("x-1");
  release.set_content_type("other/type");
  release.set_digest_sha256(std::string(64, 'a'));
  release.set_size_bytes(1);
  EXPECT_THAT((*checker)->CheckWithoutPayload(release),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("content_type: no schema")));
}

}  // namespace
}  // namespace ringfence
