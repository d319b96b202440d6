// ReleaseValidator: the seam for content validation in the service.
//
// ValidateRelease first runs the library's model checks (ringfence::
// ValidateRelease: id, content type, digest, size, targeting); a release that
// passes them is then given, with its payload, to the server's
// ReleaseValidator, if it has one, and the findings are returned to the
// caller. The content rules of lib/content (schemas, capability manifests,
// vendor validators: ringfence/release_check.h) plug in here, by an adapter
// that turns ringfence::Finding into the content.v1.Finding message
// (ringfence::ToProto in validate.h).
//
// Example:
//   class CheckerAdapter : public ReleaseValidator { ... };
//   ServerOptions options;
//   options.release_validator = std::make_unique<CheckerAdapter>(...);
//
// Checks of the release alone (publisher signatures: signing.h) go in
// Admit(), which CreateRelease and ValidateRelease both run; its error is the
// call's error. NewSignatureCheckingValidator is the one ringfenced installs
// for --trusted_keys_file / --require_signatures.
//
// Thread safety: Validate() and Admit() are called concurrently and must be
// thread-safe.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ringfence/model.h"
#include "ringfence/signing.h"
#include "ringfence/v1/ringfence.pb.h"

namespace ringfence {

class ReleaseValidator {
 public:
  virtual ~ReleaseValidator() = default;

  // Validate
  //
  // The findings about `release` (which passed the model checks) and its
  // `payload` (may be empty); a finding with severity "error" rejects the
  // release. An error status only if the validator could not run; it is
  // returned to the caller as is.
  virtual absl::StatusOr<std::vector<ringfence::content::v1::Finding>> Validate(
      const Release& release, absl::string_view payload) const = 0;

  // Admit
  //
  // Checks of `release` alone (it passed the model checks), run by
  // CreateRelease before storing it and by ValidateRelease before Validate():
  // e.g. its publisher signature. An error rejects the call and is returned
  // to the caller as is. The default admits every release.
  virtual absl::Status Admit(const Release& release) const {
    (void)release;
    return absl::OkStatus();
  }
};

using ReleaseValidatorPtr = std::unique_ptr<ReleaseValidator>;

// A ReleaseValidator that checks publisher signatures in Admit(), then
// defers to `next` (if any) for Admit() and Validate().
class SignatureCheckingValidator final : public ReleaseValidator {
 public:
  // `trusted_keys` must pass ValidateTrustedKeys.
  SignatureCheckingValidator(TrustedKeys trusted_keys, bool require_signature,
                             ReleaseValidatorPtr next = nullptr)
      : trusted_keys_(std::move(trusted_keys)),
        require_signature_(require_signature),
        next_(std::move(next)) {}

  // VerifyReleaseSignature (signing.h): FAILED_PRECONDITION if unsigned
  // while signatures are required, PERMISSION_DENIED for an untrusted key or
  // a signature that does not verify, INVALID_ARGUMENT for malformed
  // signature bytes. A signed release is verified even when signatures are
  // not required.
  absl::Status Admit(const Release& release) const override {
    absl::Status s =
        VerifyReleaseSignature(release, trusted_keys_, require_signature_);
    if (!s.ok()) return s;
    return next_ == nullptr ? absl::OkStatus() : next_->Admit(release);
  }

  absl::StatusOr<std::vector<ringfence::content::v1::Finding>> Validate(
      const Release& release, absl::string_view payload) const override {
    if (next_ == nullptr) return std::vector<ringfence::content::v1::Finding>();
    return next_->Validate(release, payload);
  }

 private:
  const TrustedKeys trusted_keys_;
  const bool require_signature_;
  const ReleaseValidatorPtr next_;
};

}  // namespace ringfence
