#include "ringfence/release_check.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ringfence/error_text.h"
#include "ringfence/external_validator.h"
#include "ringfence/status_macros.h"

namespace ringfence {

absl::StatusOr<std::unique_ptr<ReleaseChecker>> ReleaseChecker::Create(
    ReleaseCheckOptions options) {
  RETURN_IF_ERROR(ValidateTrustedKeys(options.trusted_keys));
  return std::unique_ptr<ReleaseChecker>(
      new ReleaseChecker(std::move(options)));
}

ReleaseChecker::ReleaseChecker(ReleaseCheckOptions options)
    : options_(std::move(options)) {}

absl::Status ReleaseChecker::AddContentType(
    ContentSchema schema, CapabilityManifest manifest,
    std::vector<ContentValidatorPtr> validators) {
  // Validates both (ValidateContent's configuration checks).
  RETURN_IF_ERROR(NewSchemaValidator(schema, manifest, std::nullopt).status());
  const std::string content_type = schema.content_type();
  if (rules_.contains(content_type)) {
    return absl::AlreadyExistsError(
        absl::StrCat("content type ", QuoteForError(content_type),
                     " already has a schema and capability manifest"));
  }
  for (size_t i = 0; i < validators.size(); ++i) {
    if (validators[i] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("validators[", i, "]: must not be null"));
    }
  }
  auto rules = std::make_unique<Rules>();
  rules->schema = std::move(schema);
  rules->manifest = std::move(manifest);
  rules->validators = std::move(validators);
  rules_.emplace(content_type, std::move(rules));
  return absl::OkStatus();
}

bool ReleaseChecker::HasContentType(absl::string_view content_type) const {
  return rules_.contains(content_type);
}

absl::Status ReleaseChecker::NoRulesStatus(const Release& release) const {
  if (!options_.require_content_rules) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "content_type: no schema and capability manifest are configured "
      "for ",
      QuoteForError(release.content_type()),
      ", and content must be validated before release"));
}

absl::Status ReleaseChecker::CheckWithoutPayload(const Release& release) const {
  RETURN_IF_ERROR(ValidateRelease(release));
  RETURN_IF_ERROR(VerifyReleaseSignature(release, options_.trusted_keys,
                                         options_.require_signature));
  if (rules_.contains(release.content_type())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "payload: required: content type ",
        QuoteForError(release.content_type()),
        " has a schema and capability manifest, so the payload must be "
        "sent to be validated before any host can be assigned it"));
  }
  return NoRulesStatus(release);
}

absl::StatusOr<ValidationReport> ReleaseChecker::Check(
    const Release& release, absl::string_view payload) const {
  RETURN_IF_ERROR(ValidateRelease(release));
  RETURN_IF_ERROR(VerifyPayload(release, payload));
  RETURN_IF_ERROR(VerifyReleaseSignature(release, options_.trusted_keys,
                                         options_.require_signature));
  auto it = rules_.find(release.content_type());
  if (it == rules_.end()) {
    RETURN_IF_ERROR(NoRulesStatus(release));
    return ValidationReport();
  }
  const Rules& rules = *it->second;
  const AgentRange targets{release.targeting().min_agent_version(),
                           release.targeting().max_agent_version()};
  ASSIGN_OR_RETURN(
      ValidationReport report,
      ValidateContent(payload, rules.schema, rules.manifest, targets));
  std::vector<const ContentValidator*> validators;
  for (const ContentValidatorPtr& v : rules.validators) {
    validators.push_back(v.get());
  }
  report.Merge(RunValidators(validators, payload));
  return report;
}

namespace {

absl::StatusOr<std::vector<ContentValidatorPtr>> ExternalValidators(
    const std::string& rules_path, const ContentTypeRules& rules,
    absl::string_view field) {
  std::vector<ContentValidatorPtr> out;
  for (int i = 0; i < rules.external_validators_size(); ++i) {
    const content::v1::ExternalValidatorConfig& config =
        rules.external_validators(i);
    const std::string where =
        absl::StrCat(field, ".external_validators[", i, "]");
    if (config.argv().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".argv: must not be empty"));
    }
    ExternalValidatorOptions options;
    options.name = config.name();
    options.argv.assign(config.argv().begin(), config.argv().end());
    // A bare name is looked up in PATH; a path is relative to the file.
    if (absl::StrContains(options.argv[0], '/')) {
      options.argv[0] = ResolvePath(rules_path, options.argv[0]);
    }
    if (config.timeout_seconds() > 0) {
      options.timeout = absl::Seconds(config.timeout_seconds());
    }
    if (config.memory_limit_mib() > 0) {
      options.memory_limit_bytes = uint64_t{config.memory_limit_mib()} << 20;
    }
    absl::StatusOr<ContentValidatorPtr> v =
        NewExternalValidator(std::move(options));
    if (!v.ok()) return PrefixStatus(where, v.status());
    out.push_back(*std::move(v));
  }
  return out;
}

// Loads and registers content_types[i] of the rules file `rules_path`.
absl::Status AddContentTypeRules(const std::string& rules_path, int i,
                                 const ContentTypeRules& ct,
                                 ReleaseChecker* checker) {
  const std::string field = absl::StrCat("content_types[", i, "]");
  if (ct.schema_file().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".schema_file: required"));
  }
  if (ct.capabilities_file().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".capabilities_file: required"));
  }
  ContentSchema schema;
  absl::Status s =
      LoadMessageFile(ResolvePath(rules_path, ct.schema_file()), &schema);
  if (!s.ok()) return PrefixStatus(field + ".schema_file", s);
  CapabilityManifest manifest;
  s = LoadMessageFile(ResolvePath(rules_path, ct.capabilities_file()),
                      &manifest);
  if (!s.ok()) return PrefixStatus(field + ".capabilities_file", s);
  ASSIGN_OR_RETURN(std::vector<ContentValidatorPtr> validators,
                   ExternalValidators(rules_path, ct, field));
  s = checker->AddContentType(std::move(schema), std::move(manifest),
                              std::move(validators));
  // A second entry for a content type is a mistake in this file.
  if (absl::IsAlreadyExists(s)) s = absl::InvalidArgumentError(s.message());
  if (!s.ok()) return PrefixStatus(field, s);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReleaseChecker>> NewReleaseCheckerFromFile(
    const std::string& rules_path, ReleaseCheckOptions options) {
  ContentRules rules;
  RETURN_IF_ERROR(LoadMessageFile(rules_path, &rules));
  options.require_content_rules |= rules.require_content_rules();
  ASSIGN_OR_RETURN(std::unique_ptr<ReleaseChecker> checker,
                   ReleaseChecker::Create(std::move(options)));
  for (int i = 0; i < rules.content_types_size(); ++i) {
    absl::Status s = AddContentTypeRules(rules_path, i, rules.content_types(i),
                                         checker.get());
    if (!s.ok()) return PrefixStatus(rules_path, s);
  }
  return checker;
}

}  // namespace ringfence
