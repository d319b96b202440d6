// The bounds of every request of the ringfence API (ringfence.proto),
// checked by every handler right after authentication, before it reads or
// changes anything: INVALID_ARGUMENT naming the field as the request spells
// it ("release.fetch_url: ...", "plan.stages[1].audience.hosts: ...",
// "states[0]: ..."). Nothing is cut to fit: a request over a bound is
// refused whole.
//
// One function per request message. Releases and plans are checked by the
// library's ValidateRelease and ValidatePlan (model.h, where their bounds
// are); the rest is here. The Fleet service's hot paths check in place, with
// the same functions: GetAssignment in AnswerGetAssignment (convert.h, with
// ValidateGetAssignment below), telemetry in the conversion (ValidateEvent
// below; the batch size in the Ingestor) and in the library
// (ValidateTelemetryBatch: ids and signal names).
//
// The table of bounds is in service/README.md ("Request bounds").
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "ringfence/assign.h"
#include "ringfence/v1/ringfence.pb.h"

namespace ringfence {

// Most entries of ListRolloutsRequest.states (each state at most once).
inline constexpr int kMaxStateFilters = 6;

// ListAuditRequest.limit: at most kMaxAuditPage; 0 means kDefaultAuditPage.
inline constexpr uint32_t kMaxAuditPage = 1000;
inline constexpr uint32_t kDefaultAuditPage = 100;

// Releases.
absl::Status ValidateRequest(const v1::CreateReleaseRequest& request);
absl::Status ValidateRequest(const v1::GetReleaseRequest& request);
absl::Status ValidateRequest(const v1::ListReleasesRequest& request);
absl::Status ValidateRequest(const v1::ValidateReleaseRequest& request);

// Rollouts.
absl::Status ValidateRequest(const v1::StartRolloutRequest& request);
absl::Status ValidateRequest(const v1::GetRolloutRequest& request);
absl::Status ValidateRequest(const v1::ListRolloutsRequest& request);
absl::Status ValidateRequest(const v1::WatchRolloutRequest& request);
absl::Status ValidateRequest(const v1::RolloutActionRequest& request);
absl::Status ValidateRequest(const v1::EmergencyStopRequest& request);
absl::Status ValidateRequest(const v1::ClearEmergencyStopRequest& request);
absl::Status ValidateRequest(const v1::CheckGateRequest& request);
absl::Status ValidateRequest(const v1::ListAuditRequest& request);
absl::Status ValidateRequest(const v1::ListApprovalsRequest& request);
absl::Status ValidateRequest(const v1::ApproveRequest& request);
absl::Status ValidateRequest(const v1::RejectRequest& request);

// Cluster (an empty request: always OK).
absl::Status ValidateRequest(const v1::GetClusterStatusRequest& request);

// Fleet.
//
// ValidateGetAssignment: `request`, whose host fields are `host` (its
// HostFromProto), as AnswerGetAssignment checks it.
absl::Status ValidateGetAssignment(const v1::GetAssignmentRequest& request,
                                   const HostInfo& host);
absl::Status ValidateRequest(const v1::GetAssignmentRequest& request);
// ValidateEvent: what the library's ValidateTelemetryBatch cannot check of
// `event`, events[`index`] of its batch: its type is known, its time in
// range.
absl::Status ValidateEvent(const v1::TelemetryEvent& event, int index);
// A whole batch (ValidateEvent and ValidateTelemetryBatch), at most
// `max_events` events.
absl::Status ValidateRequest(const v1::ReportTelemetryRequest& request,
                             size_t max_events);
absl::Status ValidateRequest(const v1::TelemetryBatch& request,
                             size_t max_events);

}  // namespace ringfence
