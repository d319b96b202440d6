// The Rollouts service (ringfence/v1/ringfence.proto): StartRollout,
// GetRollout, ListRollouts, WatchRollout, Pause/Resume/Abort/Promote,
// EmergencyStop, ClearEmergencyStop, CheckGate, ListAudit, and the
// two-person rule's ListApprovals, Approve and Reject.
//
// ListAudit with a rollout_id filter reads at most kMaxAuditScan entries of
// the log per call (so one call's cost is bounded however rare the
// rollout's entries are) and says where it stopped in next_after_seq.
//
// WatchRollout streams a rollout's status: it polls the Controller every
// poll_interval (default 1s, 100ms..1h) and writes when what a watcher sees
// changes; it finishes after a terminal state, and with UNAVAILABLE at its
// next poll once the server shuts down.
//
// Thread safety: gRPC calls the handlers concurrently. The Controller,
// CallAuthorizer and `shutting_down` must outlive the service and every
// watch it started.
#pragma once

#include <atomic>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ringfence/controller.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/call.h"

namespace ringfence {

// Most audit entries one filtered ListAudit call reads from the store.
inline constexpr size_t kMaxAuditScan = 10000;

class RolloutsService final : public v1::Rollouts::CallbackService {
 public:
  // `shutting_down` becomes true when the server starts shutting down.
  RolloutsService(Controller* controller, const CallAuthorizer* authorizer,
                  const std::atomic<bool>* shutting_down)
      : controller_(controller),
        authorizer_(authorizer),
        shutting_down_(shutting_down) {}

  grpc::ServerUnaryReactor* StartRollout(grpc::CallbackServerContext* ctx,
                                         const v1::StartRolloutRequest* req,
                                         Rollout* resp) override;
  grpc::ServerUnaryReactor* GetRollout(grpc::CallbackServerContext* ctx,
                                       const v1::GetRolloutRequest* req,
                                       v1::GetRolloutResponse* resp) override;
  grpc::ServerUnaryReactor* ListRollouts(
      grpc::CallbackServerContext* ctx, const v1::ListRolloutsRequest* req,
      v1::ListRolloutsResponse* resp) override;
  grpc::ServerWriteReactor<v1::GetRolloutResponse>* WatchRollout(
      grpc::CallbackServerContext* ctx,
      const v1::WatchRolloutRequest* req) override;
  grpc::ServerUnaryReactor* PauseRollout(grpc::CallbackServerContext* ctx,
                                         const v1::RolloutActionRequest* req,
                                         Rollout* resp) override;
  grpc::ServerUnaryReactor* ResumeRollout(grpc::CallbackServerContext* ctx,
                                          const v1::RolloutActionRequest* req,
                                          Rollout* resp) override;
  grpc::ServerUnaryReactor* AbortRollout(grpc::CallbackServerContext* ctx,
                                         const v1::RolloutActionRequest* req,
                                         Rollout* resp) override;
  grpc::ServerUnaryReactor* PromoteRollout(grpc::CallbackServerContext* ctx,
                                           const v1::RolloutActionRequest* req,
                                           Rollout* resp) override;
  grpc::ServerUnaryReactor* EmergencyStop(
      grpc::CallbackServerContext* ctx, const v1::EmergencyStopRequest* req,
      v1::EmergencyStopResponse* resp) override;
  grpc::ServerUnaryReactor* ClearEmergencyStop(
      grpc::CallbackServerContext* ctx,
      const v1::ClearEmergencyStopRequest* req,
      v1::ClearEmergencyStopResponse* resp) override;
  grpc::ServerUnaryReactor* CheckGate(grpc::CallbackServerContext* ctx,
                                      const v1::CheckGateRequest* req,
                                      v1::CheckGateResponse* resp) override;
  grpc::ServerUnaryReactor* ListAudit(grpc::CallbackServerContext* ctx,
                                      const v1::ListAuditRequest* req,
                                      v1::ListAuditResponse* resp) override;
  grpc::ServerUnaryReactor* ListApprovals(
      grpc::CallbackServerContext* ctx, const v1::ListApprovalsRequest* req,
      v1::ListApprovalsResponse* resp) override;
  grpc::ServerUnaryReactor* Approve(grpc::CallbackServerContext* ctx,
                                    const v1::ApproveRequest* req,
                                    v1::ApproveResponse* resp) override;
  grpc::ServerUnaryReactor* Reject(grpc::CallbackServerContext* ctx,
                                   const v1::RejectRequest* req,
                                   v1::RejectResponse* resp) override;

 private:
  enum class Action { kPause, kResume, kAbort, kPromote };

  // An operator's action on a rollout.
  grpc::ServerUnaryReactor* Manual(grpc::CallbackServerContext* ctx,
                                   const v1::RolloutActionRequest* req,
                                   Rollout* resp, absl::string_view method,
                                   Action action);

  Controller* const controller_;
  const CallAuthorizer* const authorizer_;
  const std::atomic<bool>* const shutting_down_;
};

}  // namespace ringfence
