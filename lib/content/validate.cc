#include "ringfence/validate.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "re2/re2.h"
#include "ringfence/error_text.h"
#include "ringfence/model.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

namespace v1 = content::v1;

constexpr char kSchemaSource[] = "schema";
// Error findings listed in a RejectionStatus message.
constexpr int kMaxListedErrors = 10;

// A bound of an agent version range: empty lower bounds are -inf, empty
// upper bounds +inf.
struct Bound {
  enum Kind { kNegInf, kFinite, kPosInf } kind;
  std::string version;

  static Bound Lower(const std::string& v) {
    return v.empty() ? Bound{kNegInf, ""} : Bound{kFinite, v};
  }
  static Bound Upper(const std::string& v) {
    return v.empty() ? Bound{kPosInf, ""} : Bound{kFinite, v};
  }
};

int Compare(const Bound& a, const Bound& b) {
  if (a.kind != Bound::kFinite || b.kind != Bound::kFinite) {
    return static_cast<int>(a.kind) - static_cast<int>(b.kind);
  }
  return CompareAgentVersions(a.version, b.version);
}

// One manifest entry that applies to the validated agents, prepared for
// lookups.
struct Consumer {
  std::string label;  // FormatAgentRange of the entry's range
  const AgentCapability* capability;
  absl::flat_hash_map<std::string, uint32_t> inputs;  // template type -> count
  absl::flat_hash_set<int> field_types;
  absl::flat_hash_set<int> match_kinds;
};

// What the checks need to know about the file, agents aside.
struct ConsumerPlan {
  std::vector<Consumer> consumers;
  // Findings that depend only on the manifest and the targets
  // (NO_CAPABILITY_FOR_AGENTS).
  std::vector<Finding> coverage_findings;
};

Finding MakeFinding(const char* code, Severity severity, std::string message) {
  Finding f;
  f.code = code;
  f.severity = severity;
  f.message = std::move(message);
  f.source = kSchemaSource;
  return f;
}

// Which manifest entries apply to `targets`, and the uncovered gaps.
ConsumerPlan PlanConsumers(const CapabilityManifest& manifest,
                           const std::optional<AgentRange>& targets) {
  ConsumerPlan plan;
  std::vector<const AgentCapability*> applicable;
  for (const AgentCapability& cap : manifest.agents()) {
    if (targets.has_value()) {
      const AgentRange r = RangeOf(cap);
      const bool overlaps = Compare(Bound::Lower(r.min_version),
                                    Bound::Upper(targets->max_version)) < 0 &&
                            Compare(Bound::Lower(targets->min_version),
                                    Bound::Upper(r.max_version)) < 0;
      if (!overlaps) continue;
    }
    applicable.push_back(&cap);
  }
  std::sort(applicable.begin(), applicable.end(),
            [](const AgentCapability* a, const AgentCapability* b) {
              return Compare(Bound::Lower(a->min_agent_version()),
                             Bound::Lower(b->min_agent_version())) < 0;
            });
  auto gap = [&](const Bound& from, const Bound& to) {
    const AgentRange r{from.version, to.version};
    Finding f = MakeFinding(
        codes::kNoCapabilityForAgents, Severity::kError,
        absl::StrCat("agents ", FormatAgentRange(r),
                     " are targeted but no capability manifest entry covers "
                     "them: nothing says they can consume this content"));
    f.agents = FormatAgentRange(r);
    plan.coverage_findings.push_back(std::move(f));
  };
  if (targets.has_value()) {
    Bound covered = Bound::Lower(targets->min_version);
    const Bound end = Bound::Upper(targets->max_version);
    for (const AgentCapability* cap : applicable) {
      const Bound lo = Bound::Lower(cap->min_agent_version());
      if (Compare(lo, covered) > 0) gap(covered, lo);
      const Bound hi = Bound::Upper(cap->max_agent_version());
      if (Compare(hi, covered) > 0) covered = hi;
    }
    if (Compare(covered, end) < 0) gap(covered, end);
  } else if (applicable.empty()) {
    plan.coverage_findings.push_back(MakeFinding(
        codes::kNoCapabilityForAgents, Severity::kError,
        "the capability manifest has no entries: nothing says any agent can "
        "consume this content"));
  }
  for (const AgentCapability* cap : applicable) {
    Consumer c;
    c.label = FormatAgentRange(RangeOf(*cap));
    c.capability = cap;
    for (const auto& in : cap->template_inputs()) {
      c.inputs[in.template_type()] = in.inputs_supplied();
    }
    c.field_types.insert(cap->supported_field_types().begin(),
                         cap->supported_field_types().end());
    c.match_kinds.insert(cap->supported_match_kinds().begin(),
                         cap->supported_match_kinds().end());
    plan.consumers.push_back(std::move(c));
  }
  return plan;
}

absl::string_view CriterionName(const FieldCriterion& c) {
  switch (c.match_case()) {
    case FieldCriterion::kExactString:
      return "an exact string";
    case FieldCriterion::kExactInt:
      return "an exact integer";
    case FieldCriterion::kExactBytes:
      return "exact bytes";
    case FieldCriterion::kRange:
      return "a range";
    case FieldCriterion::kPattern:
      return "a pattern";
    case FieldCriterion::kWildcard:
      return "a wildcard";
    default:
      return "nothing";
  }
}

// Whether a criterion of this kind may be used on a field of `type` (the
// table in content.proto).
bool Allowed(FieldType type, FieldCriterion::MatchCase m) {
  if (m == FieldCriterion::kWildcard) return true;
  switch (type) {
    case v1::FIELD_TYPE_INTEGER:
      return m == FieldCriterion::kExactInt || m == FieldCriterion::kRange;
    case v1::FIELD_TYPE_STRING:
    case v1::FIELD_TYPE_ENUM:
      return m == FieldCriterion::kExactString;
    case v1::FIELD_TYPE_PATTERN:
      return m == FieldCriterion::kPattern;
    case v1::FIELD_TYPE_BYTES:
      return m == FieldCriterion::kExactBytes;
    default:
      return false;
  }
}

// The outcome of compiling one pattern.
struct CompiledPattern {
  bool ok = false;
  bool too_large = false;  // RE2 ran out of its compile memory budget
  std::string error;
  int program_size = 0;
};

// One validation run over one payload.
class Run {
 public:
  Run(const ContentSchema& schema, const ConsumerPlan& plan)
      : schema_(schema), plan_(plan) {
    for (const TemplateType& t : schema.types()) types_[t.name()] = &t;
  }

  ValidationReport Validate(absl::string_view payload) {
    for (const Finding& f : plan_.coverage_findings) report_.Add(f);
    if (payload.size() > kMaxContentParseBytes) {
      report_.Add(MakeFinding(
          codes::kFileTooLarge, Severity::kError,
          absl::StrCat("the file is ", payload.size(),
                       " bytes; ringfence does not parse files over ",
                       kMaxContentParseBytes, " bytes")));
      return std::move(report_);
    }
    for (const Consumer& c : plan_.consumers) {
      const uint64_t max = c.capability->limits().max_file_bytes();
      if (max > 0 && payload.size() > max) {
        Finding f = MakeFinding(
            codes::kFileTooLarge, Severity::kError,
            absl::StrCat("the file is ", payload.size(), " bytes; agents ",
                         c.label, " accept at most ", max));
        f.agents = c.label;
        report_.Add(std::move(f));
      }
    }
    absl::StatusOr<ContentFile> file = ParseContentFile(payload);
    if (!file.ok()) {
      report_.Add(MakeFinding(codes::kParseError, Severity::kError,
                              std::string(file.status().message())));
      return std::move(report_);
    }
    CheckFile(*file);
    return std::move(report_);
  }

 private:
  // Usage of one field across the file, for WILDCARD_ONLY_FIELD.
  struct Usage {
    int wildcard = 0;
    int other = 0;
  };

  void CheckFile(const ContentFile& file) {
    for (const Consumer& c : plan_.consumers) {
      const uint32_t max = c.capability->limits().max_instances();
      if (max > 0 && static_cast<uint64_t>(file.instances_size()) > max) {
        Finding f =
            MakeFinding(codes::kTooManyInstances, Severity::kError,
                        absl::StrCat("the file has ", file.instances_size(),
                                     " instances; agents ", c.label,
                                     " load at most ", max));
        f.agents = c.label;
        report_.Add(std::move(f));
      }
    }
    absl::flat_hash_map<std::string, int> ids;
    for (int i = 0; i < file.instances_size(); ++i) {
      CheckInstance(file.instances(i), i, &ids);
    }
    // File-level warnings, in schema order so the output is stable.
    for (const TemplateType& type : schema_.types()) {
      auto used = usage_.find(type.name());
      if (used == usage_.end()) continue;
      for (int f = 0; f < type.fields_size(); ++f) {
        const Usage& u = used->second[f];
        if (u.wildcard > 0 && u.other == 0) {
          Finding finding = MakeFinding(
              codes::kWildcardOnlyField, Severity::kWarning,
              absl::StrCat(
                  "field ", f + 1, " (", QuoteForError(type.fields(f).name()),
                  ") of template type ", QuoteForError(type.name()),
                  " only ever appears with wildcard criteria (", u.wildcard,
                  u.wildcard == 1 ? " instance" : " instances",
                  "): no instance in this file exercises it"));
          finding.field = type.fields(f).name();
          finding.field_index = f + 1;
          report_.Add(std::move(finding));
        }
      }
      for (const Consumer& c : plan_.consumers) {
        auto in = c.inputs.find(type.name());
        if (in == c.inputs.end() ||
            in->second >= static_cast<uint32_t>(type.fields_size())) {
          continue;
        }
        Finding finding = MakeFinding(
            codes::kTemplateWiderThanInputs, Severity::kWarning,
            absl::StrCat(
                "template type ", QuoteForError(type.name()), " defines ",
                type.fields_size(), " fields but agents ", c.label, " supply ",
                in->second, " inputs: content must not use ",
                in->second + 1 == static_cast<uint32_t>(type.fields_size())
                    ? absl::StrCat("field ", type.fields_size())
                    : absl::StrCat("fields ", in->second + 1, "..",
                                   type.fields_size()),
                " while they are targeted"));
        finding.agents = c.label;
        report_.Add(std::move(finding));
      }
    }
  }

  void CheckInstance(const TemplateInstance& inst, int index,
                     absl::flat_hash_map<std::string, int>* ids) {
    const std::string where =
        inst.id().empty() || inst.id().size() > 128
            ? absl::StrCat("instances[", index, "]")
            : absl::StrCat("instance ", QuoteForError(inst.id()));
    auto add = [&](const char* code, std::string message) -> Finding& {
      Finding f = MakeFinding(code, Severity::kError,
                              absl::StrCat(where, ": ", std::move(message)));
      f.instance = inst.id();
      report_.Add(std::move(f));
      return report_.findings.back();
    };
    if (inst.id().empty()) {
      add(codes::kInstanceIdInvalid, "the id must not be empty");
    } else if (inst.id().size() > 128) {
      add(codes::kInstanceIdInvalid,
          absl::StrCat("the id must be at most 128 bytes (got ",
                       inst.id().size(), ")"));
    } else {
      auto [it, inserted] = ids->emplace(inst.id(), index);
      if (!inserted) {
        add(codes::kDuplicateInstance,
            absl::StrCat("instances[", index, "] reuses the id of instances[",
                         it->second, "]"));
      }
    }
    auto type_it = types_.find(inst.template_type());
    if (type_it == types_.end()) {
      add(codes::kUnknownTemplateType,
          absl::StrCat("template type ", QuoteForError(inst.template_type()),
                       " is not defined by the schema of content type ",
                       QuoteForError(schema_.content_type())));
      return;
    }
    const TemplateType& type = *type_it->second;
    std::vector<Usage>& usage = usage_[type.name()];
    usage.resize(type.fields_size());

    // Agents that do not know the template type at all.
    std::vector<const Consumer*> consumers;
    for (const Consumer& c : plan_.consumers) {
      if (c.inputs.contains(type.name())) {
        consumers.push_back(&c);
        continue;
      }
      Finding& f = add(
          codes::kTemplateTypeUnsupported,
          absl::StrCat("template type ", QuoteForError(type.name()),
                       " is not supported by agents ", c.label,
                       ": their capability manifest entry declares no inputs "
                       "for it"));
      f.agents = c.label;
    }

    absl::flat_hash_set<uint32_t> seen_fields;
    for (int j = 0; j < inst.criteria_size(); ++j) {
      const FieldCriterion& c = inst.criteria(j);
      const uint32_t idx = c.field();
      if (idx == 0 || idx > static_cast<uint32_t>(type.fields_size())) {
        Finding& f =
            add(codes::kFieldIndexOutOfSchema,
                absl::StrCat("criteria[", j, "] is on field ", idx,
                             ", but template type ", QuoteForError(type.name()),
                             " has ", type.fields_size(), " fields (1..",
                             type.fields_size(), ")"));
        f.field_index = idx;
        continue;
      }
      const TemplateType::Field& field = type.fields(idx - 1);
      const std::string field_desc =
          absl::StrCat("field ", idx, " (", QuoteForError(field.name()), ")");
      auto add_field = [&](const char* code, std::string message) -> Finding& {
        Finding& f = add(code, std::move(message));
        f.field = field.name();
        f.field_index = idx;
        return f;
      };
      if (!seen_fields.insert(idx).second) {
        add_field(codes::kDuplicateCriterion,
                  absl::StrCat(field_desc, " has more than one criterion (",
                               "criteria[", j, "] repeats it)"));
        continue;
      }
      const MatchKind kind = MatchKindOf(c);
      if (kind == v1::MATCH_KIND_UNSPECIFIED) {
        add_field(codes::kCriterionInvalid,
                  absl::StrCat("the criterion on ", field_desc,
                               " sets no match (exact_string, exact_int, "
                               "exact_bytes, range, pattern or wildcard)"));
        continue;
      }
      if (kind == v1::MATCH_KIND_WILDCARD) {
        ++usage[idx - 1].wildcard;
      } else {
        ++usage[idx - 1].other;
      }
      const CompiledPattern* pattern =
          CheckValue(c, field, field_desc, add_field);
      // Agent checks run whatever the value's problems: the field index
      // alone decides whether the interpreter reads past its inputs.
      for (const Consumer* consumer : consumers) {
        const uint32_t supplied = consumer->inputs.at(type.name());
        auto add_agent = [&](const char* code, std::string message) {
          Finding& f = add_field(code, std::move(message));
          f.agents = consumer->label;
        };
        if (idx > supplied) {
          add_agent(codes::kFieldNotSupplied,
                    absl::StrCat(field_desc, " of template type ",
                                 QuoteForError(type.name()),
                                 " is not supplied by agents ", consumer->label,
                                 ": they supply ", supplied,
                                 supplied == 1 ? " input" : " inputs",
                                 ", the content needs ", idx));
          continue;
        }
        if (!consumer->field_types.contains(field.type())) {
          add_agent(codes::kFieldTypeUnsupported,
                    absl::StrCat(field_desc, " of template type ",
                                 QuoteForError(type.name()), " has type ",
                                 FieldTypeName(field.type()), ", which agents ",
                                 consumer->label, " do not understand"));
        }
        if (!consumer->match_kinds.contains(kind)) {
          add_agent(codes::kMatchKindUnsupported,
                    absl::StrCat(field_desc, ": agents ", consumer->label,
                                 " do not support ", MatchKindName(kind),
                                 " criteria"));
        }
        const uint32_t max_program =
            consumer->capability->limits().max_pattern_program_size();
        if (pattern != nullptr && pattern->ok && max_program > 0 &&
            static_cast<uint32_t>(pattern->program_size) > max_program) {
          add_agent(
              codes::kPatternTooLarge,
              absl::StrCat(field_desc,
                           ": the pattern compiles to an RE2 "
                           "program of size ",
                           pattern->program_size, "; agents ", consumer->label,
                           " allow at most ", max_program));
        }
      }
    }
  }

  // Type, constraints and pattern compilation of one criterion. Returns the
  // compiled pattern for pattern criteria on PATTERN fields, else nullptr.
  template <typename AddField>
  const CompiledPattern* CheckValue(const FieldCriterion& c,
                                    const TemplateType::Field& field,
                                    const std::string& field_desc,
                                    AddField& add_field) {
    if (!Allowed(field.type(), c.match_case())) {
      add_field(codes::kTypeMismatch,
                absl::StrCat(field_desc, " is ", FieldTypeName(field.type()),
                             " but the criterion is ", CriterionName(c)));
      return nullptr;
    }
    auto check_length = [&](absl::string_view what, size_t length) {
      if (field.max_length() > 0 && length > field.max_length()) {
        add_field(codes::kConstraintViolated,
                  absl::StrCat(field_desc, ": the ", what, " is ", length,
                               " bytes, the field allows at most ",
                               field.max_length()));
      }
    };
    auto check_int = [&](absl::string_view what, int64_t v) {
      if ((field.has_min_value() && v < field.min_value()) ||
          (field.has_max_value() && v > field.max_value())) {
        add_field(
            codes::kConstraintViolated,
            absl::StrCat(field_desc, ": ", what, v, " is outside [",
                         field.has_min_value() ? absl::StrCat(field.min_value())
                                               : "-inf",
                         ", ",
                         field.has_max_value() ? absl::StrCat(field.max_value())
                                               : "+inf",
                         "]"));
        return false;
      }
      return true;
    };
    switch (c.match_case()) {
      case FieldCriterion::kExactInt:
        check_int("", c.exact_int());
        break;
      case FieldCriterion::kRange:
        if (c.range().lo() > c.range().hi()) {
          add_field(codes::kCriterionInvalid,
                    absl::StrCat(field_desc, ": the range [", c.range().lo(),
                                 ", ", c.range().hi(), "] is empty (lo > hi)"));
          break;
        }
        if (check_int("range start ", c.range().lo())) {
          check_int("range end ", c.range().hi());
        }
        break;
      case FieldCriterion::kExactString:
        if (field.type() == v1::FIELD_TYPE_ENUM) {
          if (std::find(field.enum_values().begin(), field.enum_values().end(),
                        c.exact_string()) == field.enum_values().end()) {
            std::vector<std::string> values;
            for (const std::string& v : field.enum_values()) {
              values.push_back(QuoteForError(v));
            }
            add_field(
                codes::kConstraintViolated,
                absl::StrCat(field_desc, ": ", QuoteForError(c.exact_string()),
                             " is not one of its values [",
                             absl::StrJoin(values, ", "), "]"));
          }
        } else {
          check_length("value", c.exact_string().size());
        }
        break;
      case FieldCriterion::kExactBytes:
        check_length("value", c.exact_bytes().size());
        break;
      case FieldCriterion::kPattern: {
        check_length("pattern", c.pattern().size());
        const CompiledPattern& p = Compile(c.pattern());
        if (p.too_large) {
          add_field(
              codes::kPatternTooLarge,
              absl::StrCat(field_desc, ": the pattern ",
                           QuoteForError(c.pattern()),
                           " is too large for RE2 to compile: ", p.error));
        } else if (!p.ok) {
          add_field(codes::kPatternInvalid,
                    absl::StrCat(field_desc,
                                 ": RE2 cannot compile the "
                                 "pattern ",
                                 QuoteForError(c.pattern()), ": ", p.error));
        }
        return &p;
      }
      default:
        break;
    }
    return nullptr;
  }

  const CompiledPattern& Compile(const std::string& pattern) {
    auto [it, inserted] = patterns_.try_emplace(pattern);
    if (!inserted) return it->second;
    RE2::Options options;
    options.set_log_errors(false);
    RE2 re(pattern, options);
    CompiledPattern& out = it->second;
    out.ok = re.ok();
    out.too_large = re.error_code() == RE2::ErrorPatternTooLarge;
    out.error = re.error();
    if (out.ok) out.program_size = re.ProgramSize();
    return out;
  }

  const ContentSchema& schema_;
  const ConsumerPlan& plan_;
  absl::flat_hash_map<std::string, const TemplateType*> types_;
  absl::flat_hash_map<std::string, std::vector<Usage>> usage_;
  absl::flat_hash_map<std::string, CompiledPattern> patterns_;
  ValidationReport report_;
};

absl::Status CheckConfig(const ContentSchema& schema,
                         const CapabilityManifest& manifest,
                         const std::optional<AgentRange>& targets) {
  absl::Status s = ValidateContentSchema(schema);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("content schema: ", s.message()));
  }
  s = ValidateCapabilityManifest(manifest);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("capability manifest: ", s.message()));
  }
  if (!manifest.content_type().empty() &&
      manifest.content_type() != schema.content_type()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "capability manifest: content_type: ",
        QuoteForError(manifest.content_type()), " differs from the schema's ",
        QuoteForError(schema.content_type())));
  }
  if (targets.has_value()) {
    for (const std::string* v :
         {&targets->min_version, &targets->max_version}) {
      if (!v->empty() && !IsValidAgentVersion(*v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("target agents: ", QuoteForError(*v),
                         " is not a dotted version like 7.11.0"));
      }
    }
    if (!targets->min_version.empty() && !targets->max_version.empty() &&
        CompareAgentVersions(targets->min_version, targets->max_version) >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("target agents: the range ", FormatAgentRange(*targets),
                       " is empty"));
    }
  }
  return absl::OkStatus();
}

class SchemaValidator : public ContentValidator {
 public:
  SchemaValidator(ContentSchema schema, CapabilityManifest manifest,
                  const std::optional<AgentRange>& targets)
      : schema_(std::move(schema)),
        manifest_(std::move(manifest)),
        plan_(PlanConsumers(manifest_, targets)) {}

  std::string name() const override { return kSchemaSource; }

  absl::StatusOr<std::vector<Finding>> Validate(
      absl::string_view payload) const override {
    return Run(schema_, plan_).Validate(payload).findings;
  }

 private:
  const ContentSchema schema_;
  const CapabilityManifest manifest_;
  const ConsumerPlan plan_;  // points into manifest_
};

}  // namespace

absl::string_view SeverityName(Severity severity) {
  return severity == Severity::kWarning ? "warning" : "error";
}

void ValidationReport::Add(Finding finding) {
  if (finding.severity == Severity::kError) ok = false;
  findings.push_back(std::move(finding));
}

void ValidationReport::Merge(const ValidationReport& other) {
  for (const Finding& f : other.findings) Add(f);
}

int ValidationReport::errors() const {
  return static_cast<int>(std::count_if(
      findings.begin(), findings.end(),
      [](const Finding& f) { return f.severity == Severity::kError; }));
}

int ValidationReport::warnings() const {
  return static_cast<int>(findings.size()) - errors();
}

std::string FormatFinding(const Finding& finding) {
  return absl::StrCat(SeverityName(finding.severity), " ", finding.code, ": ",
                      finding.message);
}

content::v1::Finding ToProto(const Finding& finding) {
  content::v1::Finding out;
  out.set_code(finding.code);
  out.set_severity(std::string(SeverityName(finding.severity)));
  out.set_instance(finding.instance);
  out.set_field(finding.field);
  out.set_message(finding.message);
  out.set_field_index(finding.field_index);
  out.set_agents(finding.agents);
  out.set_source(finding.source);
  return out;
}

content::v1::ValidationResult ToProto(const ValidationReport& report) {
  content::v1::ValidationResult out;
  out.set_ok(report.ok);
  for (const Finding& f : report.findings) *out.add_findings() = ToProto(f);
  return out;
}

Finding FromProto(const content::v1::Finding& finding) {
  Finding out;
  out.code = finding.code();
  out.severity =
      finding.severity() == "warning" ? Severity::kWarning : Severity::kError;
  out.instance = finding.instance();
  out.field = finding.field();
  out.message = finding.message();
  out.field_index = finding.field_index();
  out.agents = finding.agents();
  out.source = finding.source();
  return out;
}

ValidationReport FromProto(const content::v1::ValidationResult& result) {
  ValidationReport out;
  for (const auto& f : result.findings()) out.Add(FromProto(f));
  return out;
}

absl::Status RejectionStatus(const ValidationReport& report) {
  if (report.ok) return absl::OkStatus();
  const int errors = report.errors();
  std::vector<std::string> listed;
  for (const Finding& f : report.findings) {
    if (f.severity != Severity::kError) continue;
    if (static_cast<int>(listed.size()) == kMaxListedErrors) {
      listed.push_back(
          absl::StrCat("and ", errors - kMaxListedErrors, " more"));
      break;
    }
    listed.push_back(absl::StrCat(f.code, ": ", f.message));
  }
  absl::Status status = absl::FailedPreconditionError(absl::StrCat(
      "content rejected: ", errors,
      errors == 1 ? " error: " : " errors: ", absl::StrJoin(listed, "; ")));
  status.SetPayload(kValidationResultTypeUrl,
                    absl::Cord(ToProto(report).SerializeAsString()));
  return status;
}

std::optional<ValidationReport> ReportFromStatus(const absl::Status& status) {
  const auto payload = status.GetPayload(kValidationResultTypeUrl);
  if (!payload.has_value()) return std::nullopt;
  content::v1::ValidationResult result;
  if (!result.ParseFromString(std::string(*payload))) return std::nullopt;
  return FromProto(result);
}

absl::StatusOr<ValidationReport> ValidateContent(
    absl::string_view payload, const ContentSchema& schema,
    const CapabilityManifest& manifest,
    const std::optional<AgentRange>& targets) {
  RETURN_IF_ERROR(CheckConfig(schema, manifest, targets));
  const ConsumerPlan plan = PlanConsumers(manifest, targets);
  return Run(schema, plan).Validate(payload);
}

absl::StatusOr<ContentValidatorPtr> NewSchemaValidator(
    ContentSchema schema, CapabilityManifest manifest,
    std::optional<AgentRange> targets) {
  RETURN_IF_ERROR(CheckConfig(schema, manifest, targets));
  return std::make_unique<SchemaValidator>(std::move(schema),
                                           std::move(manifest), targets);
}

ValidationReport RunValidators(
    absl::Span<const ContentValidator* const> validators,
    absl::string_view payload) {
  ValidationReport report;
  for (const ContentValidator* v : validators) {
    absl::StatusOr<std::vector<Finding>> findings = v->Validate(payload);
    if (!findings.ok()) {
      Finding f;
      f.code = codes::kValidatorFailed;
      f.severity = Severity::kError;
      f.source = v->name();
      f.message = absl::StrCat(
          "validator ", QuoteForError(v->name()),
          " could not validate the payload: ", findings.status().ToString());
      report.Add(std::move(f));
      continue;
    }
    for (Finding& f : *findings) {
      if (f.source.empty()) f.source = v->name();
      report.Add(std::move(f));
    }
  }
  return report;
}

}  // namespace ringfence
