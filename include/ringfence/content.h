// Structured content: payload parsing, content schemas, agent capability
// manifests and agent version ranges (messages from
// ringfence/content/v1/content.proto, which documents every field).
//
// Schemas and manifests are configuration: their validation returns
// INVALID_ARGUMENT naming the field, e.g.
// `agents[1].template_inputs[0].template_type: duplicate template type
// "ipc_pipe_match"`. Problems in a payload are findings (validate.h), not
// errors.
//
// Thread safety: all functions are pure.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ringfence/content/v1/content.pb.h"

namespace ringfence {

using content::v1::AgentCapability;
using content::v1::CapabilityManifest;
using content::v1::ContentFile;
using content::v1::ContentRules;
using content::v1::ContentSchema;
using content::v1::ContentTypeRules;
using content::v1::FieldCriterion;
using content::v1::FieldType;
using content::v1::MatchKind;
using content::v1::TemplateInstance;
using content::v1::TemplateType;

// ParseContentFile
//
// Parses a payload. The rule: if `payload` is valid UTF-8 and parses as a
// text-format ContentFile, that is the result; otherwise it must parse as a
// binary ContentFile. A payload that parses both ways to different files is
// refused as ambiguous (INVALID_ARGUMENT): an agent reading it the other way
// would run content nobody validated. That is rare but real (whitespace is a
// valid binary encoding of some files); a text file whose first line is
// "#format: text" can never be binary. INVALID_ARGUMENT also when neither
// parses, with the text parser's line and column if the payload is UTF-8.
absl::StatusOr<ContentFile> ParseContentFile(absl::string_view payload);

// ValidateContentSchema
//
// Checks `schema`: content_type is an id; at least one template type; type
// names non-empty and unique; each type has fields with unique non-empty
// names and a type; ENUM fields list unique enum_values; min_value <=
// max_value.
absl::Status ValidateContentSchema(const ContentSchema& schema);

// ValidateCapabilityManifest
//
// Checks `manifest`: versions are dotted numeric ("7.11.0") with min < max;
// entries do not overlap; template_inputs unique per entry; at least one
// supported field type and match kind, none UNSPECIFIED or unknown.
absl::Status ValidateCapabilityManifest(const CapabilityManifest& manifest);

// An agent version range [min_version, max_version).
struct AgentRange {
  // Inclusive lower bound; empty = no lower bound.
  std::string min_version;
  // Exclusive upper bound; empty = no upper bound.
  std::string max_version;
};

// FormatAgentRange
//
// For messages: "[7.11, 7.12)", ">= 7.11", "< 7.12", or "of any version".
std::string FormatAgentRange(const AgentRange& range);

// RangeOf
//
// The version range of a manifest entry.
AgentRange RangeOf(const AgentCapability& capability);

// ParseAgentRange
//
// Parses "MIN..MAX" (MIN inclusive, MAX exclusive; either side may be empty:
// "7.11..", "..8") or the bracket form FormatAgentRange prints,
// "[7.11, 7.12)". INVALID_ARGUMENT on anything else, on malformed versions
// and when MIN >= MAX.
absl::StatusOr<AgentRange> ParseAgentRange(absl::string_view text);

// FieldTypeName / MatchKindName
//
// Short upper-case names for messages: "INTEGER", "PATTERN"; "WILDCARD".
absl::string_view FieldTypeName(FieldType type);
absl::string_view MatchKindName(MatchKind kind);

// MatchKindOf
//
// The match kind of a criterion (UNSPECIFIED if none is set).
MatchKind MatchKindOf(const FieldCriterion& criterion);

}  // namespace ringfence
