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

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "ringfence/config/v1/state.pb.h"
#include "ringfence/content/v1/content.pb.h"

namespace ringfence {

// A status travels in the call's trailing metadata, and clients refuse
// metadata beyond GRPC_ARG_MAX_METADATA_SIZE (8 KiB by default): the call
// then fails with an error that hides this one. So the message and the
// details stay within these bounds, together well under 8 KiB.
//
// The message, as sent (bytes outside printable ASCII count 3: gRPC
// percent-encodes them).
inline constexpr size_t kMaxStatusMessageBytes = 2048;
// The serialized details, with their copy of the message (base64 on the
// wire: 4/3 of this).
inline constexpr size_t kMaxStatusDetailsBytes = 4096;

// GrpcCodeName
//
// The canonical name of a gRPC code, e.g. "PERMISSION_DENIED" (gRPC's codes
// equal absl::StatusCode's); "UNKNOWN" for a value outside the canonical
// range.
inline std::string GrpcCodeName(grpc::StatusCode code) {
  std::string name =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? "UNKNOWN" : name;
}

// ToGrpcStatus
//
// The gRPC status with the same code and message as `status`, and its
// payloads as error details. Codes outside the canonical range become
// UNKNOWN. Within the bounds above: a longer message is cut (with its
// length); findings (a ValidationResult payload) that do not fit are left
// out of the details, and the message says how many are there; any other
// payload that does not fit is left out, and the message says so.
grpc::Status ToGrpcStatus(const absl::Status& status);

// ValidationResultFromStatus
//
// The findings a rejected CreateRelease (or any call) carried in its error
// details, if any.
std::optional<content::v1::ValidationResult> ValidationResultFromStatus(
    const grpc::Status& status);

// ApprovalRequestFromStatus
//
// The approval request a held call (the two-person rule, approvals.h)
// carried in its error details, if any.
std::optional<config::v1::ApprovalRequest> ApprovalRequestFromStatus(
    const grpc::Status& status);

}  // namespace ringfence
