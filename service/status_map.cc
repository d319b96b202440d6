#include "service/status_map.h"

#include <string>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/rpc/status.pb.h"
#include "ringfence/approvals.h"
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

namespace {

// Room kept for what FitDetails appends to a message.
constexpr size_t kNoteBytes = 160;

// The longest prefix of `message` whose percent-encoded size (gRPC's
// encoding of grpc-message) is at most `max_bytes`, with its length when
// cut.
std::string FitMessage(absl::string_view message, size_t max_bytes) {
  size_t encoded = 0;
  for (size_t i = 0; i < message.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(message[i]);
    encoded += (c < 0x20 || c > 0x7e || c == '%') ? 3 : 1;
    if (encoded > max_bytes) {
      // The suffix is plain ASCII; the room for it was kept.
      return absl::StrCat(message.substr(0, i), "... (message of ",
                          message.size(), " bytes cut)");
    }
  }
  return std::string(message);
}

// Leaves out of `details` what does not fit in `max_bytes`: the findings of
// a ValidationResult beyond the first that fit, any other payload as a
// whole. Returns what the message should add ("" if nothing was left out).
std::string FitDetails(google::rpc::Status* details, size_t max_bytes) {
  if (details->ByteSizeLong() <= max_bytes) return "";
  std::string note;
  for (google::protobuf::Any& any : *details->mutable_details()) {
    content::v1::ValidationResult result;
    if (any.type_url() != kValidationResultTypeUrl ||
        !result.ParseFromString(any.value())) {
      continue;
    }
    // Everything but this payload's findings, then as many findings as fit.
    const int total = result.findings_size();
    content::v1::ValidationResult kept = result;
    kept.clear_findings();
    any.set_value(kept.SerializeAsString());
    size_t size = details->ByteSizeLong() + 16;  // the lengths may grow
    for (const content::v1::Finding& f : result.findings()) {
      const size_t n = f.ByteSizeLong() + 8;  // tag and length
      if (size + n > max_bytes) break;
      size += n;
      *kept.add_findings() = f;
    }
    any.set_value(kept.SerializeAsString());
    if (kept.findings_size() < total) {
      absl::StrAppend(&note, "; the error details hold the first ",
                      kept.findings_size(), " of ", total, " findings");
    }
  }
  if (details->ByteSizeLong() > max_bytes) {
    absl::StrAppend(&note, "; error details of ", details->ByteSizeLong(),
                    " bytes left out");
    details->clear_details();
  }
  return note;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const int code = static_cast<int>(status.code());
  const grpc::StatusCode grpc_code =
      code > 0 && code <= static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)
          ? static_cast<grpc::StatusCode>(code)
          : grpc::StatusCode::UNKNOWN;
  google::rpc::Status details;
  status.ForEachPayload(
      [&details](absl::string_view type_url, const absl::Cord& payload) {
        google::protobuf::Any* any = details.add_details();
        any->set_type_url(std::string(type_url));
        any->set_value(std::string(payload));
      });
  std::string message =
      FitMessage(status.message(), kMaxStatusMessageBytes - kNoteBytes);
  if (details.details().empty()) return grpc::Status(grpc_code, message);
  // The details repeat the message (and the note).
  absl::StrAppend(&message,
                  FitDetails(&details, kMaxStatusDetailsBytes -
                                           (message.size() + kNoteBytes)));
  if (details.details().empty()) return grpc::Status(grpc_code, message);
  details.set_code(grpc_code);
  details.set_message(message);
  return grpc::Status(grpc_code, std::move(message),
                      details.SerializeAsString());
}

namespace {

// The first error detail of `status` of type `type_url` that parses as T.
template <typename T>
std::optional<T> DetailFromStatus(const grpc::Status& status,
                                  absl::string_view type_url) {
  if (status.error_details().empty()) return std::nullopt;
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return std::nullopt;
  for (const google::protobuf::Any& any : details.details()) {
    T result;
    if (any.type_url() == type_url && result.ParseFromString(any.value())) {
      return result;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<content::v1::ValidationResult> ValidationResultFromStatus(
    const grpc::Status& status) {
  return DetailFromStatus<content::v1::ValidationResult>(
      status, kValidationResultTypeUrl);
}

std::optional<config::v1::ApprovalRequest> ApprovalRequestFromStatus(
    const grpc::Status& status) {
  return DetailFromStatus<config::v1::ApprovalRequest>(status,
                                                       kApprovalRequestTypeUrl);
}

}  // namespace ringfence
