#include "ringfence/content.h"

#include <climits>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"
#include "ringfence/error_text.h"
#include "ringfence/model.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

using content::v1::FieldType_IsValid;
using content::v1::MatchKind_IsValid;

absl::Status Invalid(absl::string_view field, absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", reason));
}

// Keeps the first text-format error, with 1-based line and column.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_.empty()) {
      first_ = absl::StrFormat("line %d, column %d: %s", line + 1, column + 1,
                               message);
    }
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra;
    unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (end - p <= extra) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (int i = 2; i <= extra; ++i) {
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    }
    p += extra + 1;
  }
  return true;
}

absl::Status CheckName(absl::string_view name, absl::string_view field) {
  if (name.empty()) return Invalid(field, "must not be empty");
  if (name.size() > 128) {
    return Invalid(field, absl::StrCat("must be at most 128 bytes (got ",
                                       name.size(), ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckVersion(const std::string& v, absl::string_view field) {
  if (!v.empty() && !IsValidAgentVersion(v)) {
    return Invalid(field, absl::StrCat("must be a dotted version like 7.11.0 "
                                       "(got ",
                                       QuoteForError(v), ")"));
  }
  return absl::OkStatus();
}

// [a_min, a_max) and [b_min, b_max) overlap; empty bounds are infinite.
bool Overlaps(const AgentRange& a, const AgentRange& b) {
  auto below = [](const std::string& lo, const std::string& hi) {
    return lo.empty() || hi.empty() || CompareAgentVersions(lo, hi) < 0;
  };
  return below(a.min_version, b.max_version) &&
         below(b.min_version, a.max_version);
}

absl::Status ValidateCapability(const AgentCapability& cap,
                                const std::string& p) {
  RETURN_IF_ERROR(CheckVersion(cap.min_agent_version(),
                               absl::StrCat(p, ".min_agent_version")));
  RETURN_IF_ERROR(CheckVersion(cap.max_agent_version(),
                               absl::StrCat(p, ".max_agent_version")));
  if (!cap.min_agent_version().empty() && !cap.max_agent_version().empty() &&
      CompareAgentVersions(cap.min_agent_version(), cap.max_agent_version()) >=
          0) {
    return Invalid(absl::StrCat(p, ".max_agent_version"),
                   absl::StrCat("must be greater than min_agent_version (",
                                cap.min_agent_version(), ")"));
  }
  absl::flat_hash_set<std::string> types;
  for (int t = 0; t < cap.template_inputs_size(); ++t) {
    const std::string f =
        absl::StrCat(p, ".template_inputs[", t, "].template_type");
    const std::string& name = cap.template_inputs(t).template_type();
    RETURN_IF_ERROR(CheckName(name, f));
    if (!types.insert(name).second) {
      return Invalid(
          f, absl::StrCat("duplicate template type ", QuoteForError(name)));
    }
  }
  if (cap.supported_field_types_size() == 0) {
    return Invalid(absl::StrCat(p, ".supported_field_types"),
                   "must list at least one field type");
  }
  for (int i = 0; i < cap.supported_field_types_size(); ++i) {
    const int t = cap.supported_field_types(i);
    if (t == content::v1::FIELD_TYPE_UNSPECIFIED || !FieldType_IsValid(t)) {
      return Invalid(absl::StrCat(p, ".supported_field_types[", i, "]"),
                     absl::StrCat("unknown field type ", t));
    }
  }
  if (cap.supported_match_kinds_size() == 0) {
    return Invalid(absl::StrCat(p, ".supported_match_kinds"),
                   "must list at least one match kind");
  }
  for (int i = 0; i < cap.supported_match_kinds_size(); ++i) {
    const int k = cap.supported_match_kinds(i);
    if (k == content::v1::MATCH_KIND_UNSPECIFIED || !MatchKind_IsValid(k)) {
      return Invalid(absl::StrCat(p, ".supported_match_kinds[", i, "]"),
                     absl::StrCat("unknown match kind ", k));
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// The path of the first string (not bytes) field of `m` holding invalid
// UTF-8, e.g. "instances[2].criteria[0].pattern"; empty if there is none.
std::string FirstInvalidUtf8(const google::protobuf::Message& m,
                             const std::string& prefix) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection& r = *m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r.ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    const std::string name = absl::StrCat(prefix, f->name());
    const int n = f->is_repeated() ? r.FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      const std::string at =
          f->is_repeated() ? absl::StrCat(name, "[", i, "]") : name;
      if (f->type() == FieldDescriptor::TYPE_STRING) {
        std::string scratch;
        const std::string& v =
            f->is_repeated() ? r.GetRepeatedStringReference(m, f, i, &scratch)
                             : r.GetStringReference(m, f, &scratch);
        if (!IsValidUtf8(v)) return at;
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        const google::protobuf::Message& sub =
            f->is_repeated() ? r.GetRepeatedMessage(m, f, i)
                             : r.GetMessage(m, f);
        std::string bad = FirstInvalidUtf8(sub, at + ".");
        if (!bad.empty()) return bad;
      }
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<ContentFile> ParseContentFile(absl::string_view payload) {
  ContentFile file;
  std::string text_error;
  const bool utf8 = IsValidUtf8(payload);
  if (utf8) {
    google::protobuf::TextFormat::Parser parser;
    FirstErrorCollector errors;
    parser.RecordErrorsTo(&errors);
    if (parser.ParseFromString(std::string(payload), &file)) {
      // Escapes ("\xed") can put bytes that are not UTF-8 into string
      // fields; the binary format (and so the agents' parser) refuses those,
      // so text must too.
      const std::string bad = FirstInvalidUtf8(file, "");
      if (!bad.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            bad,
            ": not valid UTF-8 (string fields must be UTF-8; use a "
            "bytes criterion for raw bytes)"));
      }
      // One payload, one meaning: bytes that are also a binary ContentFile
      // with other contents could be read that way by an agent, which would
      // then run content nobody validated. (content_fuzz found binary files
      // that are valid text: "\n\t\t" and eight spaces is an instance with
      // an unknown field in binary and an empty file in text.)
      ContentFile binary;
      if (payload.size() <= static_cast<size_t>(INT_MAX) &&
          binary.ParseFromArray(payload.data(),
                                static_cast<int>(payload.size())) &&
          binary.SerializeAsString() != file.SerializeAsString()) {
        return absl::InvalidArgumentError(
            "ambiguous payload: it parses both as a text-format ContentFile "
            "and, with other contents, as a binary one; send the binary "
            "encoding, or make the text's first line \"#format: text\" "
            "(which no binary ContentFile can start with)");
      }
      return file;
    }
    text_error = errors.first();
    file.Clear();
  }
  if (payload.size() <= static_cast<size_t>(INT_MAX) &&
      file.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return file;
  }
  if (utf8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a text-format ContentFile (",
        CutForError(text_error, kMaxParserMessageBytes), ") nor a binary one"));
  }
  return absl::InvalidArgumentError(
      "not a binary ContentFile (and, not being UTF-8, not a text-format one)");
}

absl::Status ValidateContentSchema(const ContentSchema& schema) {
  RETURN_IF_ERROR(ValidateId(schema.content_type(), "content_type"));
  if (schema.types_size() == 0) {
    return Invalid("types", "must define at least one template type");
  }
  absl::flat_hash_set<std::string> type_names;
  for (int t = 0; t < schema.types_size(); ++t) {
    const TemplateType& type = schema.types(t);
    const std::string p = absl::StrCat("types[", t, "]");
    RETURN_IF_ERROR(CheckName(type.name(), absl::StrCat(p, ".name")));
    if (!type_names.insert(type.name()).second) {
      return Invalid(
          absl::StrCat(p, ".name"),
          absl::StrCat("duplicate template type ", QuoteForError(type.name())));
    }
    if (type.fields_size() == 0) {
      return Invalid(absl::StrCat(p, ".fields"),
                     "must define at least one field");
    }
    absl::flat_hash_set<std::string> field_names;
    for (int f = 0; f < type.fields_size(); ++f) {
      const TemplateType::Field& field = type.fields(f);
      const std::string fp = absl::StrCat(p, ".fields[", f, "]");
      RETURN_IF_ERROR(CheckName(field.name(), absl::StrCat(fp, ".name")));
      if (!field_names.insert(field.name()).second) {
        return Invalid(
            absl::StrCat(fp, ".name"),
            absl::StrCat("duplicate field ", QuoteForError(field.name())));
      }
      if (field.type() == content::v1::FIELD_TYPE_UNSPECIFIED ||
          !FieldType_IsValid(field.type())) {
        return Invalid(absl::StrCat(fp, ".type"), "must be set");
      }
      const bool is_enum = field.type() == content::v1::FIELD_TYPE_ENUM;
      if (is_enum && field.enum_values_size() == 0) {
        return Invalid(absl::StrCat(fp, ".enum_values"),
                       "an ENUM field must list its values");
      }
      if (!is_enum && field.enum_values_size() > 0) {
        return Invalid(absl::StrCat(fp, ".enum_values"),
                       absl::StrCat("only ENUM fields have values (the field "
                                    "is ",
                                    FieldTypeName(field.type()), ")"));
      }
      absl::flat_hash_set<std::string> values;
      for (int v = 0; v < field.enum_values_size(); ++v) {
        if (!values.insert(field.enum_values(v)).second) {
          return Invalid(absl::StrCat(fp, ".enum_values[", v, "]"),
                         absl::StrCat("duplicate value ",
                                      QuoteForError(field.enum_values(v))));
        }
      }
      const bool is_int = field.type() == content::v1::FIELD_TYPE_INTEGER;
      if (!is_int && (field.has_min_value() || field.has_max_value())) {
        return Invalid(fp, "only INTEGER fields have min_value / max_value");
      }
      if (field.has_min_value() && field.has_max_value() &&
          field.min_value() > field.max_value()) {
        return Invalid(
            absl::StrCat(fp, ".max_value"),
            absl::StrCat("must be >= min_value (", field.min_value(), ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateCapabilityManifest(const CapabilityManifest& manifest) {
  if (!manifest.content_type().empty()) {
    RETURN_IF_ERROR(ValidateId(manifest.content_type(), "content_type"));
  }
  for (int a = 0; a < manifest.agents_size(); ++a) {
    const std::string p = absl::StrCat("agents[", a, "]");
    RETURN_IF_ERROR(ValidateCapability(manifest.agents(a), p));
    const AgentRange range = RangeOf(manifest.agents(a));
    for (int b = 0; b < a; ++b) {
      const AgentRange other = RangeOf(manifest.agents(b));
      if (Overlaps(range, other)) {
        return Invalid(p, absl::StrCat("agents ", FormatAgentRange(range),
                                       " overlap agents[", b, "] (agents ",
                                       FormatAgentRange(other), ")"));
      }
    }
  }
  return absl::OkStatus();
}

std::string FormatAgentRange(const AgentRange& range) {
  if (range.min_version.empty() && range.max_version.empty()) {
    return "of any version";
  }
  if (range.max_version.empty()) return absl::StrCat(">= ", range.min_version);
  if (range.min_version.empty()) return absl::StrCat("< ", range.max_version);
  return absl::StrCat("[", range.min_version, ", ", range.max_version, ")");
}

AgentRange RangeOf(const AgentCapability& capability) {
  return AgentRange{capability.min_agent_version(),
                    capability.max_agent_version()};
}

absl::StatusOr<AgentRange> ParseAgentRange(absl::string_view text) {
  absl::string_view s = absl::StripAsciiWhitespace(text);
  absl::string_view lo, hi;
  if (absl::ConsumePrefix(&s, "[")) {
    if (!absl::ConsumeSuffix(&s, ")")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "agent range ", QuoteForError(text), ": expected \"[MIN, MAX)\""));
    }
    const size_t comma = s.find(',');
    if (comma == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "agent range ", QuoteForError(text), ": expected \"[MIN, MAX)\""));
    }
    lo = s.substr(0, comma);
    hi = s.substr(comma + 1);
  } else {
    const size_t dots = s.find("..");
    if (dots == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("agent range ", QuoteForError(text),
                       ": expected MIN..MAX (MAX exclusive; either may be "
                       "empty), e.g. 7.11..7.12"));
    }
    lo = s.substr(0, dots);
    hi = s.substr(dots + 2);
  }
  AgentRange range{std::string(absl::StripAsciiWhitespace(lo)),
                   std::string(absl::StripAsciiWhitespace(hi))};
  for (const std::string* v : {&range.min_version, &range.max_version}) {
    if (!v->empty() && !IsValidAgentVersion(*v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "agent range ", QuoteForError(text), ": ", QuoteForError(*v),
          " is not a dotted version like 7.11.0"));
    }
  }
  if (!range.min_version.empty() && !range.max_version.empty() &&
      CompareAgentVersions(range.min_version, range.max_version) >= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "agent range ", QuoteForError(text), ": MIN must be less than MAX"));
  }
  return range;
}

absl::string_view FieldTypeName(FieldType type) {
  switch (type) {
    case content::v1::FIELD_TYPE_INTEGER:
      return "INTEGER";
    case content::v1::FIELD_TYPE_STRING:
      return "STRING";
    case content::v1::FIELD_TYPE_PATTERN:
      return "PATTERN";
    case content::v1::FIELD_TYPE_BYTES:
      return "BYTES";
    case content::v1::FIELD_TYPE_ENUM:
      return "ENUM";
    default:
      return "UNSPECIFIED";
  }
}

absl::string_view MatchKindName(MatchKind kind) {
  switch (kind) {
    case content::v1::MATCH_KIND_EXACT:
      return "EXACT";
    case content::v1::MATCH_KIND_RANGE:
      return "RANGE";
    case content::v1::MATCH_KIND_PATTERN:
      return "PATTERN";
    case content::v1::MATCH_KIND_WILDCARD:
      return "WILDCARD";
    default:
      return "UNSPECIFIED";
  }
}

MatchKind MatchKindOf(const FieldCriterion& criterion) {
  switch (criterion.match_case()) {
    case FieldCriterion::kExactString:
    case FieldCriterion::kExactInt:
    case FieldCriterion::kExactBytes:
      return content::v1::MATCH_KIND_EXACT;
    case FieldCriterion::kRange:
      return content::v1::MATCH_KIND_RANGE;
    case FieldCriterion::kPattern:
      return content::v1::MATCH_KIND_PATTERN;
    case FieldCriterion::kWildcard:
      return content::v1::MATCH_KIND_WILDCARD;
    default:
      return content::v1::MATCH_KIND_UNSPECIFIED;
  }
}

}  // namespace ringfence
