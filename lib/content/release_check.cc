#include "ringfence/release_check.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
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
        absl::StrCat("content type \"", content_type,
                     "\" already has a schema and capability manifest"));
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

absl::StatusOr<ValidationReport> ReleaseChecker::Check(
    const Release& release, absl::string_view payload) const {
  RETURN_IF_ERROR(ValidateRelease(release));
  RETURN_IF_ERROR(VerifyPayload(release, payload));
  RETURN_IF_ERROR(VerifyReleaseSignature(release, options_.trusted_keys,
                                         options_.require_signature));
  auto it = rules_.find(release.content_type());
  if (it == rules_.end()) {
    if (options_.require_content_rules) {
      return absl::FailedPreconditionError(absl::StrCat(
          "content_type: no schema and capability manifest are configured "
          "for \"",
          absl::CHexEscape(release.content_type()),
          "\", and content must be validated before release"));
    }
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

}  // namespace ringfence
