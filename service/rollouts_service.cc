#include "service/rollouts_service.h"

#include <grpcpp/alarm.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ringfence/model.h"
#include "service/convert.h"
#include "service/status_map.h"

namespace ringfence {
namespace {

// What makes a watcher's view of a rollout different enough to send.
std::string ChangeKey(const RolloutStatus& st) {
  std::string key = absl::StrCat(
      st.rollout.version(), "/", st.rollout.state(), "/", st.rollout.stage(),
      "/", st.telemetry.treatment_hosts, "/", st.telemetry.control_hosts, "/",
      st.stage_exposure_budget, "/");
  for (const SignalCounts& c : st.telemetry.signal_counts) {
    absl::StrAppend(&key, c.treatment_affected, ":", c.control_affected, ",");
  }
  if (st.rollout.has_last_decision()) {
    const Decision& d = st.rollout.last_decision();
    absl::StrAppend(&key, "/", d.verdict(), "/",
                    d.evidence_size() > 0 ? d.evidence(0).rule() : "");
  }
  return key;
}

// Streams a rollout's status: polls the controller on a grpc::Alarm and
// writes when the ChangeKey changes; finishes after a terminal state.
// Invariants: outside of mu_, exactly one of {a write, an alarm} is pending
// until Finish is requested; Finish is called only when neither is, and
// outside of mu_ as the last action of a reaction (OnDone may delete `this`
// as soon as Finish is called).
class WatchReactor final
    : public grpc::ServerWriteReactor<v1::GetRolloutResponse> {
 public:
  WatchReactor(Controller* controller, const std::atomic<bool>* shutting_down,
               std::string rollout_id, absl::Duration interval)
      : controller_(controller),
        shutting_down_(shutting_down),
        rollout_id_(std::move(rollout_id)),
        interval_(interval) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      PollLocked();
      finish = TakeFinishLocked();
    }
    if (finish) Finish(*finish);
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (!ok || cancelled_) {
        RequestFinishLocked(
            grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      } else if (terminal_) {
        RequestFinishLocked(grpc::Status::OK);
      } else {
        ScheduleLocked();
      }
      finish = TakeFinishLocked();
    }
    if (finish) Finish(*finish);
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    // The pending alarm's callback (ok=false) or write completion finishes.
    if (alarm_pending_) alarm_->Cancel();
  }

  void OnDone() override { delete this; }

 private:
  void OnAlarm(bool ok) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      alarm_pending_ = false;
      if (!ok || cancelled_) {
        RequestFinishLocked(
            grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      } else {
        PollLocked();
      }
      finish = TakeFinishLocked();
    }
    if (finish) Finish(*finish);
  }

  void PollLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (shutting_down_->load(std::memory_order_acquire)) {
      // Clients reconnect to another (or the restarted) server.
      RequestFinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                       "the server is shutting down"));
      return;
    }
    absl::StatusOr<RolloutStatus> st = controller_->GetRollout(rollout_id_);
    if (!st.ok()) {
      RequestFinishLocked(ToGrpcStatus(st.status()));
      return;
    }
    std::string key = ChangeKey(*st);
    if (key == last_key_) {
      ScheduleLocked();
      return;
    }
    last_key_ = std::move(key);
    terminal_ = IsTerminal(st->rollout.state());
    response_ = RolloutStatusToProto(*st);
    StartWrite(&response_);
  }

  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // The previous alarm may be the one whose callback is running now, so it
    // is destroyed one round later.
    retired_alarm_ = std::move(alarm_);
    alarm_ = std::make_unique<grpc::Alarm>();
    alarm_pending_ = true;
    alarm_->Set(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(interval_),
                [this](bool ok) { OnAlarm(ok); });
  }

  void RequestFinishLocked(grpc::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_requested_) return;
    finish_requested_ = true;
    finish_ = std::move(status);
  }

  std::optional<grpc::Status> TakeFinishLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::optional<grpc::Status> out = std::move(finish_);
    finish_.reset();
    return out;
  }

  Controller* const controller_;
  const std::atomic<bool>* const shutting_down_;
  const std::string rollout_id_;
  const absl::Duration interval_;
  absl::Mutex mu_;
  std::unique_ptr<grpc::Alarm> alarm_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Alarm> retired_alarm_ ABSL_GUARDED_BY(mu_);
  bool alarm_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool terminal_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mu_);
  std::string last_key_ ABSL_GUARDED_BY(mu_);
  v1::GetRolloutResponse response_ ABSL_GUARDED_BY(mu_);
};

grpc::Status Reply(absl::StatusOr<Rollout> r, Rollout* resp) {
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp = *std::move(r);
  return grpc::Status::OK;
}

}  // namespace

grpc::ServerUnaryReactor* RolloutsService::StartRollout(
    grpc::CallbackServerContext* ctx, const v1::StartRolloutRequest* req,
    Rollout* resp) {
  return authorizer_->Unary(
      ctx, kPublisherRoles, "StartRollout", *req, [&](const Principal& p) {
        StartRolloutRequest r;
        r.rollout_id = req->rollout_id();
        r.release_id = req->release_id();
        r.plan = req->plan();
        r.baseline_release_id = req->baseline_release_id();
        r.actor = p.actor;
        r.reason = req->reason();
        r.start_pending = req->start_pending();
        r.allow_no_baseline = req->allow_no_baseline();
        return Reply(controller_->StartRollout(r), resp);
      });
}

grpc::ServerUnaryReactor* RolloutsService::GetRollout(
    grpc::CallbackServerContext* ctx, const v1::GetRolloutRequest* req,
    v1::GetRolloutResponse* resp) {
  return authorizer_->Unary(
      ctx, kReaderRoles, "GetRollout", *req, [&](const Principal&) {
        absl::StatusOr<RolloutStatus> st =
            controller_->GetRollout(req->rollout_id());
        if (!st.ok()) return ToGrpcStatus(st.status());
        *resp = RolloutStatusToProto(*st);
        if (req->include_decisions()) {
          absl::StatusOr<std::vector<Decision>> d = controller_->ListDecisions(
              req->rollout_id(), req->decisions_after_seq());
          if (!d.ok()) return ToGrpcStatus(d.status());
          for (Decision& decision : *d) {
            *resp->add_decisions() = std::move(decision);
          }
        }
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* RolloutsService::ListRollouts(
    grpc::CallbackServerContext* ctx, const v1::ListRolloutsRequest* req,
    v1::ListRolloutsResponse* resp) {
  return authorizer_->Unary(
      ctx, kReaderRoles, "ListRollouts", *req, [&](const Principal&) {
        absl::StatusOr<std::vector<Rollout>> rollouts =
            controller_->ListRollouts();
        if (!rollouts.ok()) return ToGrpcStatus(rollouts.status());
        for (Rollout& r : *rollouts) {
          if (!req->content_type().empty() &&
              r.content_type() != req->content_type()) {
            continue;
          }
          if (!req->release_id().empty() &&
              r.release_id() != req->release_id()) {
            continue;
          }
          if (req->states_size() > 0 &&
              std::find(req->states().begin(), req->states().end(),
                        r.state()) == req->states().end()) {
            continue;
          }
          *resp->add_rollouts() = std::move(r);
        }
        return grpc::Status::OK;
      });
}

grpc::ServerWriteReactor<v1::GetRolloutResponse>* RolloutsService::WatchRollout(
    grpc::CallbackServerContext* ctx, const v1::WatchRolloutRequest* req) {
  Principal principal;
  grpc::Status s =
      authorizer_->Admit(ctx, kReaderRoles, "WatchRollout", *req, &principal);
  if (!s.ok()) {
    return new FailedStream<grpc::ServerWriteReactor<v1::GetRolloutResponse>>(
        s);
  }
  return new WatchReactor(controller_, shutting_down_, req->rollout_id(),
                          req->has_poll_interval()
                              ? FromProto(req->poll_interval())
                              : absl::Seconds(1));
}

grpc::ServerUnaryReactor* RolloutsService::PauseRollout(
    grpc::CallbackServerContext* ctx, const v1::RolloutActionRequest* req,
    Rollout* resp) {
  return Manual(ctx, req, resp, "PauseRollout", Action::kPause);
}

grpc::ServerUnaryReactor* RolloutsService::ResumeRollout(
    grpc::CallbackServerContext* ctx, const v1::RolloutActionRequest* req,
    Rollout* resp) {
  return Manual(ctx, req, resp, "ResumeRollout", Action::kResume);
}

grpc::ServerUnaryReactor* RolloutsService::AbortRollout(
    grpc::CallbackServerContext* ctx, const v1::RolloutActionRequest* req,
    Rollout* resp) {
  return Manual(ctx, req, resp, "AbortRollout", Action::kAbort);
}

grpc::ServerUnaryReactor* RolloutsService::PromoteRollout(
    grpc::CallbackServerContext* ctx, const v1::RolloutActionRequest* req,
    Rollout* resp) {
  return Manual(ctx, req, resp, "PromoteRollout", Action::kPromote);
}

grpc::ServerUnaryReactor* RolloutsService::EmergencyStop(
    grpc::CallbackServerContext* ctx, const v1::EmergencyStopRequest* req,
    v1::EmergencyStopResponse* resp) {
  return authorizer_->Unary(
      ctx, kOperatorRoles, "EmergencyStop", *req, [&](const Principal& p) {
        // The rollouts active before the stop are the ones it halts.
        absl::StatusOr<std::vector<Rollout>> before =
            controller_->ListRollouts();
        if (!before.ok()) return ToGrpcStatus(before.status());
        absl::Status s = controller_->EmergencyStop(req->content_type(),
                                                    p.actor, req->reason());
        if (!s.ok()) return ToGrpcStatus(s);
        resp->set_content_type(req->content_type());
        for (const Rollout& r : *before) {
          if (r.content_type() != req->content_type() ||
              IsTerminal(r.state())) {
            continue;
          }
          absl::StatusOr<RolloutStatus> now = controller_->GetRollout(r.id());
          if (now.ok() && now->rollout.state() == config::v1::HALTED) {
            resp->add_halted_rollout_ids(r.id());
          }
        }
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* RolloutsService::ClearEmergencyStop(
    grpc::CallbackServerContext* ctx, const v1::ClearEmergencyStopRequest* req,
    v1::ClearEmergencyStopResponse*) {
  return authorizer_->Unary(
      ctx, kOperatorRoles, "ClearEmergencyStop", *req, [&](const Principal& p) {
        return ToGrpcStatus(controller_->ClearEmergencyStop(
            req->content_type(), p.actor, req->reason()));
      });
}

grpc::ServerUnaryReactor* RolloutsService::CheckGate(
    grpc::CallbackServerContext* ctx, const v1::CheckGateRequest* req,
    v1::CheckGateResponse* resp) {
  return authorizer_->Unary(
      ctx, kReaderRoles, "CheckGate", *req, [&](const Principal&) {
        absl::StatusOr<GateCheck> check =
            controller_->CheckGate(req->release_id(), req->stage());
        if (!check.ok()) return ToGrpcStatus(check.status());
        *resp = GateCheckToProto(*check);
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* RolloutsService::ListAudit(
    grpc::CallbackServerContext* ctx, const v1::ListAuditRequest* req,
    v1::ListAuditResponse* resp) {
  return authorizer_->Unary(
      ctx, kReaderRoles, "ListAudit", *req, [&](const Principal&) {
        const size_t limit =
            req->limit() == 0 ? kDefaultAuditPage : req->limit();
        uint64_t after = req->after_seq();
        size_t scanned = 0;
        // Unfiltered: one read. Filtered: read pages until `limit` entries
        // match, the log ends, or kMaxAuditScan entries were read.
        while (static_cast<size_t>(resp->entries_size()) < limit &&
               scanned < kMaxAuditScan) {
          const size_t want = req->rollout_id().empty()
                                  ? limit - resp->entries_size()
                                  : std::min(limit, kMaxAuditScan - scanned);
          absl::StatusOr<std::vector<AuditEntry>> page =
              controller_->ReadAudit(after, want);
          if (!page.ok()) return ToGrpcStatus(page.status());
          for (AuditEntry& e : *page) {
            after = e.seq();
            ++scanned;
            if (!req->rollout_id().empty() &&
                e.rollout_id() != req->rollout_id()) {
              continue;
            }
            *resp->add_entries() = std::move(e);
            if (static_cast<size_t>(resp->entries_size()) == limit) break;
          }
          if (page->size() < want) {
            resp->set_end_of_log(true);
            break;
          }
        }
        resp->set_next_after_seq(after);
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* RolloutsService::ListApprovals(
    grpc::CallbackServerContext* ctx, const v1::ListApprovalsRequest* req,
    v1::ListApprovalsResponse* resp) {
  return authorizer_->Unary(
      ctx, kReaderRoles, "ListApprovals", *req, [&](const Principal&) {
        for (ApprovalRequest& r : controller_->ListApprovals()) {
          *resp->add_requests() = std::move(r);
        }
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* RolloutsService::Approve(
    grpc::CallbackServerContext* ctx, const v1::ApproveRequest* req,
    v1::ApproveResponse* resp) {
  return authorizer_->Unary(
      ctx, kOperatorRoles, "Approve", *req, [&](const Principal& p) {
        absl::StatusOr<Controller::ApprovalOutcome> out =
            controller_->Approve(req->request_id(), p.actor, req->reason());
        if (!out.ok()) return ToGrpcStatus(out.status());
        *resp->mutable_request() = std::move(out->request);
        if (out->rollout.has_value()) {
          *resp->mutable_rollout() = *std::move(out->rollout);
        }
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* RolloutsService::Reject(
    grpc::CallbackServerContext* ctx, const v1::RejectRequest* req,
    v1::RejectResponse*) {
  return authorizer_->Unary(ctx, kOperatorRoles, "Reject", *req,
                            [&](const Principal& p) {
                              return ToGrpcStatus(controller_->RejectApproval(
                                  req->request_id(), p.actor, req->reason()));
                            });
}

grpc::ServerUnaryReactor* RolloutsService::Manual(
    grpc::CallbackServerContext* ctx, const v1::RolloutActionRequest* req,
    Rollout* resp, absl::string_view method, Action action) {
  return authorizer_->Unary(
      ctx, kOperatorRoles, method, *req, [&](const Principal& p) {
        Controller& c = *controller_;
        const std::string& id = req->rollout_id();
        const std::string& reason = req->reason();
        switch (action) {
          case Action::kPause:
            return Reply(c.Pause(id, p.actor, reason), resp);
          case Action::kResume:
            return Reply(c.Resume(id, p.actor, reason), resp);
          case Action::kAbort:
            return Reply(c.Abort(id, p.actor, reason), resp);
          case Action::kPromote:
            break;
        }
        return Reply(c.Promote(id, p.actor, reason), resp);
      });
}

}  // namespace ringfence
