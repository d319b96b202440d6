#include "service/status_map.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "google/rpc/status.pb.h"
#include "ringfence/validate.h"

namespace ringfence {

// The mapping relies on the codes being equal; these are the ends and a few
// in between.
static_assert(static_cast<int>(absl::StatusCode::kCancelled) ==
              grpc::StatusCode::CANCELLED);
static_assert(static_cast<int>(absl::StatusCode::kInvalidArgument) ==
              grpc::StatusCode::INVALID_ARGUMENT);
static_assert(static_cast<int>(absl::StatusCode::kFailedPrecondition) ==
              grpc::StatusCode::FAILED_PRECONDITION);
static_assert(static_cast<int>(absl::StatusCode::kUnauthenticated) ==
              grpc::StatusCode::UNAUTHENTICATED);

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const int code = static_cast<int>(status.code());
  const grpc::StatusCode grpc_code =
      code > 0 && code <= static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)
          ? static_cast<grpc::StatusCode>(code)
          : grpc::StatusCode::UNKNOWN;
  std::string message(status.message());
  google::rpc::Status details;
  status.ForEachPayload(
      [&details](absl::string_view type_url, const absl::Cord& payload) {
        google::protobuf::Any* any = details.add_details();
        any->set_type_url(std::string(type_url));
        any->set_value(std::string(payload));
      });
  if (details.details().empty()) return grpc::Status(grpc_code, message);
  details.set_code(grpc_code);
  details.set_message(message);
  return grpc::Status(grpc_code, std::move(message),
                      details.SerializeAsString());
}

std::optional<content::v1::ValidationResult> ValidationResultFromStatus(
    const grpc::Status& status) {
  if (status.error_details().empty()) return std::nullopt;
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return std::nullopt;
  for (const google::protobuf::Any& any : details.details()) {
    content::v1::ValidationResult result;
    if (any.type_url() == kValidationResultTypeUrl &&
        result.ParseFromString(any.value())) {
      return result;
    }
  }
  return std::nullopt;
}

}  // namespace ringfence
