// GrpcAgentTransport: the agent core's link to ringfenced over gRPC
// (ringfence/agent.h's AgentTransport on the ringfence.v1 Fleet service).
//
// GetAssignment asks for the identity's one content type and maps the
// answer; ReportTelemetry sends a batch of spooled events as one
// ReportTelemetry call. Every call carries `token` as a bearer token when it
// is set, and a deadline of `deadline`. Errors are the call's gRPC status
// as an absl::Status (the agent keeps what it runs and re-sends later);
// RESOURCE_EXHAUSTED (the server's backpressure) sets *retry_after to
// `backpressure_retry`.
//
// Example:
//   auto channel = MakeChannel("rollouts.example:7443", tls);
//   GrpcAgentTransport transport(channel, token);
//   auto agent = Agent::Start(options, &fs, &clock, &transport, &hooks);
//
// Thread safety: calls may be made from several threads (gRPC stubs are
// thread-safe); the agent makes them from one.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "ringfence/agent.h"
#include "ringfence/v1/ringfence.grpc.pb.h"

namespace ringfence {

// The messages of the agent's calls, shared by every transport
// (GrpcAgentTransport, HttpAgentTransport).

// AssignmentRequest
//
// The GetAssignmentRequest of `identity` (its one content type), whose
// spool holds `telemetry_pending` undelivered events.
v1::GetAssignmentRequest AssignmentRequest(const AgentIdentity& identity,
                                           uint64_t telemetry_pending);

// AnswerFromResponse
//
// The agent's answer in `response` to AssignmentRequest(identity, ...);
// INTERNAL if the server did not answer for exactly that content type.
absl::StatusOr<AssignmentAnswer> AnswerFromResponse(
    const AgentIdentity& identity, const v1::GetAssignmentResponse& response);

// TelemetryRequest
//
// The ReportTelemetryRequest carrying `batch`, in order.
v1::ReportTelemetryRequest TelemetryRequest(
    absl::Span<const SpooledEvent> batch);

class GrpcAgentTransport final : public AgentTransport {
 public:
  GrpcAgentTransport(std::shared_ptr<grpc::Channel> channel, std::string token,
                     absl::Duration deadline = absl::Seconds(10),
                     absl::Duration backpressure_retry = absl::Seconds(5));

  absl::StatusOr<AssignmentAnswer> GetAssignment(
      const AgentIdentity& identity, uint64_t telemetry_pending) override;
  absl::Status ReportTelemetry(absl::Span<const SpooledEvent> batch,
                               absl::Duration* retry_after) override;

 private:
  std::unique_ptr<grpc::ClientContext> Context() const;

  std::unique_ptr<v1::Fleet::Stub> fleet_;
  const std::string token_;
  const absl::Duration deadline_;
  const absl::Duration backpressure_retry_;
};

}  // namespace ringfence
