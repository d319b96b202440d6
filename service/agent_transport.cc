#include "service/agent_transport.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "service/convert.h"

namespace ringfence {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

}  // namespace

GrpcAgentTransport::GrpcAgentTransport(std::shared_ptr<grpc::Channel> channel,
                                       std::string token,
                                       absl::Duration deadline,
                                       absl::Duration backpressure_retry)
    : fleet_(v1::Fleet::NewStub(std::move(channel))),
      token_(std::move(token)),
      deadline_(deadline),
      backpressure_retry_(backpressure_retry) {}

std::unique_ptr<grpc::ClientContext> GrpcAgentTransport::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!token_.empty()) {
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  }
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  return ctx;
}

v1::GetAssignmentRequest AssignmentRequest(const AgentIdentity& identity,
                                           uint64_t telemetry_pending) {
  v1::GetAssignmentRequest req;
  req.set_telemetry_pending(telemetry_pending);
  req.set_host_id(identity.host_id);
  req.set_tenant(identity.tenant);
  for (const std::string& l : identity.labels) req.add_labels(l);
  req.set_agent_version(identity.agent_version);
  req.set_platform(identity.platform);
  req.add_content_types(identity.content_type);
  return req;
}

absl::StatusOr<AssignmentAnswer> AnswerFromResponse(
    const AgentIdentity& identity, const v1::GetAssignmentResponse& response) {
  if (response.assignments_size() != 1 ||
      response.assignments(0).content_type() != identity.content_type) {
    return absl::InternalError(absl::StrCat("GetAssignment answered ",
                                            response.assignments_size(),
                                            " content types for one asked"));
  }
  const v1::ContentAssignment& a = response.assignments(0);
  AssignmentAnswer answer;
  answer.has_release = a.has_release();
  answer.unload = a.unload();
  if (a.has_release()) {
    Release& r = answer.release;
    r.set_id(a.release_id());
    r.set_content_type(a.content_type());
    r.set_version(a.version());
    r.set_digest_sha256(a.digest_sha256());
    r.set_size_bytes(a.size_bytes());
    r.set_fetch_url(a.fetch_url());
    r.set_signature(a.signature());
    *r.mutable_targeting() = a.targeting();
  }
  return answer;
}

v1::ReportTelemetryRequest TelemetryRequest(
    absl::Span<const SpooledEvent> batch) {
  v1::ReportTelemetryRequest req;
  for (const SpooledEvent& e : batch) {
    *req.add_events() = EventToProto(e.event);
  }
  return req;
}

absl::StatusOr<AssignmentAnswer> GrpcAgentTransport::GetAssignment(
    const AgentIdentity& identity, uint64_t telemetry_pending) {
  v1::GetAssignmentResponse resp;
  const grpc::Status s = fleet_->GetAssignment(
      Context().get(), AssignmentRequest(identity, telemetry_pending), &resp);
  if (!s.ok()) return FromGrpc(s);
  return AnswerFromResponse(identity, resp);
}

absl::Status GrpcAgentTransport::ReportTelemetry(
    absl::Span<const SpooledEvent> batch, absl::Duration* retry_after) {
  v1::ReportTelemetryResponse resp;
  const grpc::Status s =
      fleet_->ReportTelemetry(Context().get(), TelemetryRequest(batch), &resp);
  if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    *retry_after = backpressure_retry_;
  }
  return FromGrpc(s);
}

}  // namespace ringfence
