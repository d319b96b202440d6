// Content validation against the consumer: a payload is checked against its
// content type's schema AND the capability manifest entry of every agent
// version it targets, and each problem becomes a Finding with a stable code.
//
//   ASSIGN_OR_RETURN(ValidationReport report,
//                    ValidateContent(payload, schema, manifest,
//                                    AgentRange{"7.11", "7.12"}));
//   if (!report.ok) return RejectionStatus(report);  // FAILED_PRECONDITION
//
// The finding that matters most (the July 2024 outage):
//   FIELD_NOT_SUPPLIED  instance "cf291-i7": field 21 ("wildcard_21") of
//     template type "ipc_pipe_match" is not supplied by agents [7.11, 7.12):
//     they supply 20 inputs, the content needs 21
//
// Vendors add their own checks as ContentValidators (in process, or an
// external command: external_validator.h); RunValidators() runs a list and
// turns a validator that fails to produce an answer into a VALIDATOR_FAILED
// error: a crash or a hang rejects the payload, it never passes it.
//
// Thread safety: the functions are pure. ContentValidator implementations
// must allow concurrent Validate() calls (a server validates several
// releases at once); the ones in this library do.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ringfence/content.h"

namespace ringfence {

enum class Severity {
  // Rejects the payload.
  kError,
  // Reported; does not reject.
  kWarning,
};

// SeverityName
//
// "error" or "warning".
absl::string_view SeverityName(Severity severity);

// Stable finding codes produced by ringfence. Per-agent codes are reported
// once per offending item and agent range; `Finding::agents` names the range.
namespace codes {
// The payload is neither a text nor a binary ContentFile.
inline constexpr char kParseError[] = "PARSE_ERROR";
// Payload larger than an agent range's limits.max_file_bytes (or than
// kMaxContentParseBytes, in which case it is not parsed at all).
inline constexpr char kFileTooLarge[] = "FILE_TOO_LARGE";
// More instances than an agent range's limits.max_instances.
inline constexpr char kTooManyInstances[] = "TOO_MANY_INSTANCES";
// An instance id is empty or longer than 128 bytes.
inline constexpr char kInstanceIdInvalid[] = "INSTANCE_ID_INVALID";
// Two instances share an id.
inline constexpr char kDuplicateInstance[] = "DUPLICATE_INSTANCE";
// An instance names a template type the schema does not define.
inline constexpr char kUnknownTemplateType[] = "UNKNOWN_TEMPLATE_TYPE";
// A criterion's field index is 0 or beyond the template type's fields.
inline constexpr char kFieldIndexOutOfSchema[] = "FIELD_INDEX_OUT_OF_SCHEMA";
// Two criteria of one instance are on the same field.
inline constexpr char kDuplicateCriterion[] = "DUPLICATE_CRITERION";
// A criterion sets no match, or a range with lo > hi.
inline constexpr char kCriterionInvalid[] = "CRITERION_INVALID";
// The criterion's kind is not allowed for the field's type (content.proto
// FieldType has the table), e.g. a pattern on an INTEGER field.
inline constexpr char kTypeMismatch[] = "TYPE_MISMATCH";
// A value breaks a field constraint: enum_values, max_length, min/max_value.
inline constexpr char kConstraintViolated[] = "CONSTRAINT_VIOLATED";
// RE2 cannot compile a pattern.
inline constexpr char kPatternInvalid[] = "PATTERN_INVALID";
// A pattern's RE2 program exceeds an agent range's
// limits.max_pattern_program_size (or RE2's own compile memory budget).
inline constexpr char kPatternTooLarge[] = "PATTERN_TOO_LARGE";
// A criterion is on a field index above the inputs an agent range supplies
// for the template type. Wildcards count: nothing in the manifest says the
// interpreter skips reading the input for them.
inline constexpr char kFieldNotSupplied[] = "FIELD_NOT_SUPPLIED";
// An agent range's manifest entry has no template_inputs for the type.
inline constexpr char kTemplateTypeUnsupported[] = "TEMPLATE_TYPE_UNSUPPORTED";
// A criterion's match kind is not in an agent range's supported_match_kinds.
inline constexpr char kMatchKindUnsupported[] = "MATCH_KIND_UNSUPPORTED";
// A criterion is on a field whose type is not in an agent range's
// supported_field_types.
inline constexpr char kFieldTypeUnsupported[] = "FIELD_TYPE_UNSUPPORTED";
// Part of the targeted agent versions is covered by no manifest entry (or the
// manifest is empty). Missing data never passes.
inline constexpr char kNoCapabilityForAgents[] = "NO_CAPABILITY_FOR_AGENTS";
// A ContentValidator crashed, timed out, failed, or answered garbage.
inline constexpr char kValidatorFailed[] = "VALIDATOR_FAILED";

// Warning: a field that appears in the file only with wildcard criteria, so
// no instance of this file exercises it (how the 21st field escaped testing).
inline constexpr char kWildcardOnlyField[] = "WILDCARD_ONLY_FIELD";
// Warning: a template type used by the file defines more fields than an agent
// range supplies inputs for; only criteria on the missing fields are errors.
inline constexpr char kTemplateWiderThanInputs[] = "TEMPLATE_WIDER_THAN_INPUTS";
}  // namespace codes

// Payloads larger than this are rejected (FILE_TOO_LARGE) without parsing.
inline constexpr size_t kMaxContentParseBytes = 64 << 20;

struct Finding {
  // Stable code, e.g. codes::kFieldNotSupplied.
  std::string code;
  Severity severity = Severity::kError;
  // The template instance id ("" if the finding is not about one instance).
  std::string instance;
  // The field name ("" if not about a field, or the index is not in the
  // schema).
  std::string field;
  // For people; names the instance, field, template type and agent range
  // where they apply.
  std::string message;
  // The 1-based field index (0 if not about a field).
  uint32_t field_index = 0;
  // The agent range the finding applies to, as FormatAgentRange prints it
  // ("" = independent of the agent).
  std::string agents;
  // The validator that produced it: "schema" for ValidateContent, the
  // validator's name for others.
  std::string source;
};

struct ValidationReport {
  // True if no finding has severity kError.
  bool ok = true;
  // In the order found: file-level findings (coverage, size, parse, instance
  // count) first, then per instance (per criterion, per agent range), then
  // the file-level warnings (WILDCARD_ONLY_FIELD, TEMPLATE_WIDER_THAN_INPUTS).
  // Validators run by RunValidators append theirs in order.
  std::vector<Finding> findings;

  // Appends `finding` and updates `ok`.
  void Add(Finding finding);
  // Appends all of `other`'s findings.
  void Merge(const ValidationReport& other);
  // Number of kError / kWarning findings.
  int errors() const;
  int warnings() const;
};

// FormatFinding
//
// One line for people: "error FIELD_NOT_SUPPLIED: instance \"cf291-i7\": ...".
std::string FormatFinding(const Finding& finding);

// ToProto / FromProto
//
// Conversions with the ringfence.content.v1 messages (for JSON output and
// RPCs). FromProto maps any severity other than "warning" to kError.
content::v1::Finding ToProto(const Finding& finding);
content::v1::ValidationResult ToProto(const ValidationReport& report);
Finding FromProto(const content::v1::Finding& finding);
ValidationReport FromProto(const content::v1::ValidationResult& result);

// RejectionStatus
//
// OK if `report.ok`; otherwise FAILED_PRECONDITION whose message lists the
// error findings ("content rejected: 1 error: FIELD_NOT_SUPPLIED: instance
// ...") and which carries the whole report as a payload under
// kValidationResultTypeUrl (a serialized ValidationResult), for the service
// to return as error details.
absl::Status RejectionStatus(const ValidationReport& report);
inline constexpr char kValidationResultTypeUrl[] =
    "type.googleapis.com/ringfence.content.v1.ValidationResult";

// ReportFromStatus
//
// The report RejectionStatus attached to `status`, if any.
std::optional<ValidationReport> ReportFromStatus(const absl::Status& status);

// ValidateContent
//
// Parses `payload` and validates it against `schema` and `manifest` for the
// agents in `targets`:
//   * targets set: every manifest entry overlapping *targets applies, and the
//     parts of *targets no entry covers are NO_CAPABILITY_FOR_AGENTS (an
//     AgentRange with both bounds empty means every agent version). Use the
//     release's targeting here.
//   * targets nullopt: every manifest entry applies, no coverage check (for
//     checking a file offline before it is tied to a release).
// Per agent range the checks are FILE_TOO_LARGE, TOO_MANY_INSTANCES,
// TEMPLATE_TYPE_UNSUPPORTED, FIELD_NOT_SUPPLIED, FIELD_TYPE_UNSUPPORTED,
// MATCH_KIND_UNSUPPORTED, PATTERN_TOO_LARGE and TEMPLATE_WIDER_THAN_INPUTS.
// A payload that does not parse yields PARSE_ERROR and no per-instance
// findings (coverage and size findings are still reported).
//
// Errors (INVALID_ARGUMENT) only for an invalid schema, manifest or range, or
// a manifest whose content_type differs from the schema's; findings never
// turn into errors.
absl::StatusOr<ValidationReport> ValidateContent(
    absl::string_view payload, const ContentSchema& schema,
    const CapabilityManifest& manifest,
    const std::optional<AgentRange>& targets);

// ContentValidator
//
// A check of a payload. Vendors implement it to plug their own rules in (or
// use NewExternalValidator to run their real parser). Return findings for
// problems in the payload; return an error status only if the validator
// itself could not run; RunValidators treats that as a rejection.
class ContentValidator {
 public:
  virtual ~ContentValidator() = default;

  // A short name for Finding::source and messages, e.g. "vendor-parser".
  virtual std::string name() const = 0;

  // Validates `payload`. Must be safe to call concurrently.
  virtual absl::StatusOr<std::vector<Finding>> Validate(
      absl::string_view payload) const = 0;
};
using ContentValidatorPtr = std::unique_ptr<ContentValidator>;

// NewSchemaValidator
//
// ValidateContent as a ContentValidator (named "schema"): the schema,
// manifest and targets are checked once, here (INVALID_ARGUMENT).
absl::StatusOr<ContentValidatorPtr> NewSchemaValidator(
    ContentSchema schema, CapabilityManifest manifest,
    std::optional<AgentRange> targets);

// RunValidators
//
// Runs each validator on `payload` and collects the findings. Findings with
// an empty source get the validator's name. A validator that returns an error
// status yields a VALIDATOR_FAILED error finding naming it and the status.
ValidationReport RunValidators(
    absl::Span<const ContentValidator* const> validators,
    absl::string_view payload);

}  // namespace ringfence
