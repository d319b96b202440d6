#include "service/request_validation.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ringfence/model.h"
#include "ringfence/status_macros.h"
#include "ringfence/telemetry.h"
#include "service/convert.h"

namespace ringfence {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", reason));
}

// The library names fields inside a release or plan; the request's field
// is `prefix` ("release", "plan").
absl::Status Within(absl::string_view prefix, absl::Status s) {
  if (s.ok() || !absl::IsInvalidArgument(s)) return s;
  return absl::InvalidArgumentError(absl::StrCat(prefix, ".", s.message()));
}

absl::Status OptionalId(absl::string_view id, absl::string_view field) {
  return id.empty() ? absl::OkStatus() : ValidateId(id, field);
}

// A reason recorded in the audit log: required, at most kMaxReasonBytes.
absl::Status Reason(absl::string_view reason) {
  if (reason.empty()) return Invalid("reason", "must not be empty");
  if (reason.size() > kMaxReasonBytes) {
    return Invalid("reason",
                   absl::StrCat("must be at most ", kMaxReasonBytes,
                                " characters (got ", reason.size(), ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateBatch(
    const google::protobuf::RepeatedPtrField<v1::TelemetryEvent>& events,
    size_t max_events) {
  if (static_cast<size_t>(events.size()) > max_events) {
    return Invalid("events",
                   absl::StrCat("at most ", max_events,
                                " events per batch (got ", events.size(), ")"));
  }
  std::vector<TelemetryEventView> views;
  RETURN_IF_ERROR(EventViewsFromProto(events, &views));
  return ValidateTelemetryBatch(views, max_events);
}

}  // namespace

absl::Status ValidateRequest(const v1::CreateReleaseRequest& request) {
  // The payload is bounded by the server's largest message.
  return Within("release", ValidateRelease(request.release()));
}

absl::Status ValidateRequest(const v1::GetReleaseRequest& request) {
  return ValidateId(request.release_id(), "release_id");
}

absl::Status ValidateRequest(const v1::ListReleasesRequest& request) {
  return OptionalId(request.content_type(), "content_type");
}

absl::Status ValidateRequest(const v1::ValidateReleaseRequest& request) {
  return Within("release", ValidateRelease(request.release()));
}

absl::Status ValidateRequest(const v1::StartRolloutRequest& request) {
  RETURN_IF_ERROR(OptionalId(request.rollout_id(), "rollout_id"));
  RETURN_IF_ERROR(ValidateId(request.release_id(), "release_id"));
  RETURN_IF_ERROR(
      OptionalId(request.baseline_release_id(), "baseline_release_id"));
  RETURN_IF_ERROR(Reason(request.reason()));
  return Within("plan", ValidatePlan(request.plan()));
}

absl::Status ValidateRequest(const v1::GetRolloutRequest& request) {
  // decisions_after_seq: any value (past the last decision: none).
  return ValidateId(request.rollout_id(), "rollout_id");
}

absl::Status ValidateRequest(const v1::ListRolloutsRequest& request) {
  RETURN_IF_ERROR(OptionalId(request.content_type(), "content_type"));
  RETURN_IF_ERROR(OptionalId(request.release_id(), "release_id"));
  if (request.states_size() > kMaxStateFilters) {
    return Invalid("states",
                   absl::StrCat("at most ", kMaxStateFilters, " states (got ",
                                request.states_size(), ")"));
  }
  for (int i = 0; i < request.states_size(); ++i) {
    const int state = request.states(i);
    if (state == config::v1::ROLLOUT_STATE_UNSPECIFIED ||
        !config::v1::RolloutState_IsValid(state)) {
      return Invalid(absl::StrCat("states[", i, "]"),
                     absl::StrCat("must be one of PENDING, RUNNING, PAUSED, "
                                  "HALTED, ABORTED, COMPLETED (got ",
                                  state, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const v1::WatchRolloutRequest& request) {
  RETURN_IF_ERROR(ValidateId(request.rollout_id(), "rollout_id"));
  if (!request.has_poll_interval()) return absl::OkStatus();
  RETURN_IF_ERROR(
      internal::CheckDuration(request.poll_interval(), "poll_interval", true));
  const absl::Duration interval = FromProto(request.poll_interval());
  if (interval < absl::Milliseconds(100) || interval > absl::Hours(1)) {
    return Invalid("poll_interval", "must be in [100ms, 1h]");
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const v1::RolloutActionRequest& request) {
  RETURN_IF_ERROR(ValidateId(request.rollout_id(), "rollout_id"));
  return Reason(request.reason());
}

absl::Status ValidateRequest(const v1::EmergencyStopRequest& request) {
  RETURN_IF_ERROR(ValidateId(request.content_type(), "content_type"));
  return Reason(request.reason());
}

absl::Status ValidateRequest(const v1::ClearEmergencyStopRequest& request) {
  RETURN_IF_ERROR(ValidateId(request.content_type(), "content_type"));
  return Reason(request.reason());
}

absl::Status ValidateRequest(const v1::CheckGateRequest& request) {
  RETURN_IF_ERROR(ValidateId(request.release_id(), "release_id"));
  // Stage names are ids ("late-track" too).
  return OptionalId(request.stage(), "stage");
}

absl::Status ValidateRequest(const v1::ListAuditRequest& request) {
  if (request.limit() > kMaxAuditPage) {
    return Invalid("limit", absl::StrCat("must be at most ", kMaxAuditPage,
                                         " (got ", request.limit(), ")"));
  }
  return OptionalId(request.rollout_id(), "rollout_id");
}

absl::Status ValidateRequest(const v1::ListApprovalsRequest&) {
  return absl::OkStatus();
}

absl::Status ValidateRequest(const v1::GetClusterStatusRequest&) {
  return absl::OkStatus();
}

absl::Status ValidateRequest(const v1::ApproveRequest& request) {
  RETURN_IF_ERROR(ValidateId(request.request_id(), "request_id"));
  return Reason(request.reason());
}

absl::Status ValidateRequest(const v1::RejectRequest& request) {
  RETURN_IF_ERROR(ValidateId(request.request_id(), "request_id"));
  return Reason(request.reason());
}

absl::Status ValidateGetAssignment(const v1::GetAssignmentRequest& request,
                                   const HostInfo& host) {
  RETURN_IF_ERROR(ValidateHostInfo(host));
  if (request.content_types_size() == 0) {
    return Invalid("content_types", "must name at least one content type");
  }
  if (request.content_types_size() > kMaxContentTypesPerRequest) {
    return Invalid("content_types",
                   absl::StrCat("at most ", kMaxContentTypesPerRequest,
                                " (got ", request.content_types_size(), ")"));
  }
  for (int i = 0; i < request.content_types_size(); ++i) {
    // The field name is built only for an error.
    if (IsValidId(request.content_types(i))) continue;
    return ValidateId(request.content_types(i),
                      absl::StrCat("content_types[", i, "]"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const v1::GetAssignmentRequest& request) {
  return ValidateGetAssignment(request, HostFromProto(request));
}

absl::Status ValidateEvent(const v1::TelemetryEvent& event, int index) {
  if (event.type() < v1::APPLYING || event.type() > v1::SIGNAL) {
    return Invalid(absl::StrCat("events[", index, "].type"),
                   absl::StrCat("must be one of APPLYING, APPLIED, HEARTBEAT, "
                                "CRASH, BOOT, SIGNAL (got ",
                                static_cast<int>(event.type()), ")"));
  }
  if (event.has_time() && !IsValidTimestamp(event.time())) {
    return ValidateTimestamp(event.time(),
                             absl::StrCat("events[", index, "].time"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const v1::ReportTelemetryRequest& request,
                             size_t max_events) {
  return ValidateBatch(request.events(), max_events);
}

absl::Status ValidateRequest(const v1::TelemetryBatch& request,
                             size_t max_events) {
  return ValidateBatch(request.events(), max_events);
}

}  // namespace ringfence
