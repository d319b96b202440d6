// The one conversion from library errors (absl::Status) to gRPC statuses.
//
// The canonical codes of Abseil and gRPC are numerically equal, so the code
// is kept as is, and so is the message (the library writes messages a person
// can act on: the field, the state or the id). This is the only place the
// service converts a Status.
//
// Thread safety: a pure function.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ringfence {

// ToGrpcStatus
//
// The gRPC status with the same code and message as `status`. Codes outside
// the canonical range become UNKNOWN.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace ringfence
