// The one conversion from library errors (absl::Status) to gRPC statuses.
//
// The canonical codes of Abseil and gRPC are numerically equal, so the code
// is kept as is, and so is the message (the library writes messages a person
// can act on: the field, the state or the id). Payloads the library attached
// to the status (e.g. the findings of a rejected release, a
// content.v1.ValidationResult under validate.h's kValidationResultTypeUrl)
// travel as the details of the gRPC richer error model: a serialized
// google.rpc.Status whose `details` are the payloads as Any messages. This
// is the only place the service converts a Status.
//
// Thread safety: pure functions.
#pragma once

#include <grpcpp/support/status.h>

#include <optional>

#include "absl/status/status.h"
#include "ringfence/content/v1/content.pb.h"

namespace ringfence {

// ToGrpcStatus
//
// The gRPC status with the same code and message as `status`, and its
// payloads as error details. Codes outside the canonical range become
// UNKNOWN.
grpc::Status ToGrpcStatus(const absl::Status& status);

// ValidationResultFromStatus
//
// The findings a rejected CreateRelease (or any call) carried in its error
// details, if any.
std::optional<content::v1::ValidationResult> ValidationResultFromStatus(
    const grpc::Status& status);

}  // namespace ringfence
