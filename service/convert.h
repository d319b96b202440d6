// Conversions between the API's protos (ringfence/v1/ringfence.proto) and
// the library's types. Pure translation: no validation beyond what a type
// conversion needs (an enum value outside the library's range); the library
// validates everything else.
//
// Thread safety: pure functions.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "ringfence/assign.h"
#include "ringfence/controller.h"
#include "ringfence/telemetry.h"
#include "ringfence/v1/ringfence.pb.h"

namespace ringfence {

// HostFromProto
//
// The HostInfo of an assignment request.
HostInfo HostFromProto(const v1::GetAssignmentRequest& request);
// The same into `*host`, reusing its strings' buffers.
void HostFromProto(const v1::GetAssignmentRequest& request, HostInfo* host);

// EventsFromProto
//
// The library events of a telemetry batch (ReportTelemetryRequest.events or
// TelemetryBatch.events). INVALID_ARGUMENT naming the event
// ("events[3].type") for an unset or unknown event type or a time out of
// range (request_validation.h ValidateEvent).
absl::StatusOr<std::vector<TelemetryEvent>> EventsFromProto(
    const google::protobuf::RepeatedPtrField<v1::TelemetryEvent>& events);

// EventViewsFromProto
//
// The same as EventsFromProto (and the same errors), but into `*views`
// (cleared first; its capacity is reused), and the events borrow their
// strings from `events`, which must outlive them.
absl::Status EventViewsFromProto(
    const google::protobuf::RepeatedPtrField<v1::TelemetryEvent>& events,
    std::vector<TelemetryEventView>* views);

// EventToProto
//
// The proto of a library event (for clients written in C++).
v1::TelemetryEvent EventToProto(const TelemetryEvent& event);

// AssignmentToProto
//
// The answer for `content_type`.
v1::ContentAssignment AssignmentToProto(absl::string_view content_type,
                                        const Assignment& assignment);
// The same into `*out`, which must be empty (new or cleared).
void AssignmentToProto(absl::string_view content_type,
                       const Assignment& assignment,
                       v1::ContentAssignment* out);

// Most content types one GetAssignment request may ask about.
inline constexpr int kMaxContentTypesPerRequest = 64;

// AnswerGetAssignment
//
// What the GetAssignment handler does besides gRPC: `request` into `*host`
// (scratch the caller may reuse across calls), the request's validation
// (request_validation.h ValidateGetAssignment: INVALID_ARGUMENT naming the
// field; nothing is answered), then one answer per requested content type
// appended to `*response`.
absl::Status AnswerGetAssignment(Controller& controller,
                                 const v1::GetAssignmentRequest& request,
                                 HostInfo* host,
                                 v1::GetAssignmentResponse* response);

// AssignReasonToProto
v1::AssignReason AssignReasonToProto(AssignReason reason);

// RolloutStatusToProto
//
// A rollout with its live aggregates (no decisions).
v1::GetRolloutResponse RolloutStatusToProto(const RolloutStatus& status);

// GateCheckToProto
v1::CheckGateResponse GateCheckToProto(const GateCheck& check);

}  // namespace ringfence
