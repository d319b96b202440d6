// ReleaseValidator: the seam for content validation in the service.
//
// ValidateRelease first runs the library's model checks (ringfence::
// ValidateRelease: id, content type, digest, size, targeting); a release that
// passes them is then given, with its payload, to the server's
// ReleaseValidator, if it has one, and the findings are returned to the
// caller. The content rules of lib/content (schemas, capability manifests,
// vendor validators: ringfence/release_check.h) plug in here, by an adapter
// that turns ringfence::Finding into v1::Finding (the messages are
// wire-compatible with ringfence.content.v1.Finding).
//
// Example:
//   class CheckerAdapter : public ReleaseValidator { ... };
//   ServerOptions options;
//   options.release_validator = std::make_unique<CheckerAdapter>(...);
//
// Thread safety: Validate() is called concurrently and must be thread-safe.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ringfence/model.h"
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
  virtual absl::StatusOr<std::vector<v1::Finding>> Validate(
      const Release& release, absl::string_view payload) const = 0;
};

using ReleaseValidatorPtr = std::unique_ptr<ReleaseValidator>;

}  // namespace ringfence
