// ReleaseChecker: everything a release must pass before any host can be
// assigned it, in one call — what CreateRelease and ValidateRelease run.
//
//   ReleaseCheckOptions options;
//   options.trusted_keys = LoadedKeys();
//   options.require_signature = true;
//   ASSIGN_OR_RETURN(auto checker, ReleaseChecker::Create(options));
//   RETURN_IF_ERROR(checker->AddContentType(schema, manifest));
//   ...
//   ASSIGN_OR_RETURN(ValidationReport report, checker->Check(release,
//   payload)); RETURN_IF_ERROR(RejectionStatus(report));  //
//   FAILED_PRECONDITION + findings
//
// Check() runs, in order, and stops at the first error status:
//   1. ValidateRelease (model.h)            INVALID_ARGUMENT
//   2. VerifyPayload (signing.h)            INVALID_ARGUMENT
//   3. VerifyReleaseSignature (signing.h)   FAILED_PRECONDITION /
//                                           PERMISSION_DENIED /
//                                           INVALID_ARGUMENT
// then, if the release's content type is registered, validates the payload
// against its schema and manifest for the release's targeted agent versions
// (targeting.min/max_agent_version; both empty = every agent version, which
// the manifest must then cover), and runs the content type's vendor
// validators. The findings come back as a report; a report that is not ok
// means "rejected" (RejectionStatus turns it into FAILED_PRECONDITION).
//
// Configuration from a file: NewReleaseCheckerFromFile (below).
//
// Thread safety: configure (AddContentType) before sharing; Check() is const
// and safe to call concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ringfence/content.h"
#include "ringfence/model.h"
#include "ringfence/signing.h"
#include "ringfence/validate.h"

namespace ringfence {

struct ReleaseCheckOptions {
  // Publisher keys whose signatures are accepted (default none).
  TrustedKeys trusted_keys;
  // Reject unsigned releases (default false: unsigned releases pass step 3,
  // signed ones must still verify).
  bool require_signature = false;
  // Reject (FAILED_PRECONDITION) releases of content types with no schema
  // registered (default false: only steps 1-3 apply to them).
  bool require_content_rules = false;
};

class ReleaseChecker {
 public:
  // Create
  //
  // INVALID_ARGUMENT if a trusted key is invalid (ValidateTrustedKeys).
  static absl::StatusOr<std::unique_ptr<ReleaseChecker>> Create(
      ReleaseCheckOptions options);

  ReleaseChecker(const ReleaseChecker&) = delete;
  ReleaseChecker& operator=(const ReleaseChecker&) = delete;

  // AddContentType
  //
  // Registers the rules of `schema.content_type()`: the schema, the
  // manifest of its agents and vendor validators run after the schema
  // validation. INVALID_ARGUMENT for an invalid schema or manifest;
  // ALREADY_EXISTS if the content type is registered.
  absl::Status AddContentType(ContentSchema schema, CapabilityManifest manifest,
                              std::vector<ContentValidatorPtr> validators = {});

  // HasContentType
  //
  // True if AddContentType registered `content_type`.
  bool HasContentType(absl::string_view content_type) const;

  // Check
  //
  // See the file comment. The report's findings come from the schema
  // validation, then from each vendor validator.
  absl::StatusOr<ValidationReport> Check(const Release& release,
                                         absl::string_view payload) const;

  // CheckWithoutPayload
  //
  // For a caller that has no payload to send: steps 1 and 3 and the
  // require_content_rules option. A release of a registered content type
  // cannot pass without its payload (FAILED_PRECONDITION naming `payload`):
  // its content must be validated before any host can be assigned it.
  absl::Status CheckWithoutPayload(const Release& release) const;

 private:
  struct Rules {
    ContentSchema schema;
    CapabilityManifest manifest;
    std::vector<ContentValidatorPtr> validators;
  };

  explicit ReleaseChecker(ReleaseCheckOptions options);

  // FAILED_PRECONDITION if content rules are required (for a release of a
  // content type without rules).
  absl::Status NoRulesStatus(const Release& release) const;

  const ReleaseCheckOptions options_;
  absl::flat_hash_map<std::string, std::unique_ptr<Rules>> rules_;
};

// NewReleaseCheckerFromFile
//
// A checker with `options` and the content rules of `rules_path` (a
// content.v1.ContentRules file; see content.proto): each content type's
// schema, capability manifest and external validators. Its
// require_content_rules is or-ed into `options`. Errors name the file and
// the field, e.g. `rules.textproto: content_types[1].schema_file: ...`:
// NOT_FOUND for a file that cannot be read, INVALID_ARGUMENT for invalid
// contents or a duplicate content type.
absl::StatusOr<std::unique_ptr<ReleaseChecker>> NewReleaseCheckerFromFile(
    const std::string& rules_path, ReleaseCheckOptions options);

}  // namespace ringfence
