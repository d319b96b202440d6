// Controller: the two-person rule (approvals.h): holding a guarded call as
// a request, and carrying a request out once a second principal approves.
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ringfence/controller.h"
#include "ringfence/error_text.h"
#include "ringfence/status_macros.h"

namespace ringfence {

namespace {

// The entry after `after_seq`, if any.
absl::StatusOr<std::optional<AuditEntry>> EntryAfter(Store& store,
                                                     uint64_t after_seq) {
  ASSIGN_OR_RETURN(std::vector<AuditEntry> one, store.ReadAudit(after_seq, 1));
  if (one.empty()) return std::optional<AuditEntry>();
  return std::optional<AuditEntry>(std::move(one.front()));
}

}  // namespace

absl::Status Controller::LoadApprovalsLocked() {
  if (!approvals_.has_rules()) return absl::OkStatus();
  // A request older than the longest window has expired, and whatever
  // settles a request comes after it: the replay starts at the first entry
  // younger than that (with an hour's margin for the clocks of replicas
  // that wrote the log), found by binary search on sequence numbers, so a
  // restart reads O(log n) entries plus the recent ones, not the whole log.
  const absl::Time since = clock_->Now() - kMaxApprovalWindow - absl::Hours(1);
  uint64_t lo = 0, hi = 1;  // the answer is in (lo, hi]: entries after lo
  while (true) {            // hi: past the end, or an entry at/after `since`
    ASSIGN_OR_RETURN(std::optional<AuditEntry> e, EntryAfter(*store_, hi - 1));
    if (!e.has_value() || FromProto(e->at()) >= since) break;
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const uint64_t mid = lo + (hi - lo) / 2;
    ASSIGN_OR_RETURN(std::optional<AuditEntry> e, EntryAfter(*store_, mid - 1));
    if (e.has_value() && FromProto(e->at()) < since) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  constexpr size_t kPage = 1000;
  uint64_t after = lo;
  while (true) {
    ASSIGN_OR_RETURN(std::vector<AuditEntry> page,
                     store_->ReadAudit(after, kPage));
    for (const AuditEntry& e : page) approvals_.Replay(e);
    if (page.size() < kPage) break;
    after = page.back().seq();
  }
  return absl::OkStatus();
}

absl::Status Controller::MaybeHoldLocked(
    const Approval* approval, absl::string_view content_type,
    absl::Span<const GuardedAction> actions, ApprovalRequest request) {
  if (approval != nullptr || !approvals_.has_rules()) return absl::OkStatus();
  ApprovalBook::Need need = approvals_.Needs(content_type, actions);
  if (need.guarded.empty()) return absl::OkStatus();
  const absl::Time now = clock_->Now();
  request.set_id(NewApprovalRequestId());
  for (const GuardedAction g : need.guarded) request.add_guarded(g);
  request.set_content_type(std::string(content_type));
  *request.mutable_requested_at() = ToProtoTime(now);
  *request.mutable_expires_at() = ToProtoTime(now + need.window);
  AuditEntry audit =
      MakeAudit(request.requested_by(), "approval_requested", request.reason());
  audit.set_rollout_id(request.rollout_id());
  *audit.mutable_approval_request() = request;
  absl::Status s = store_->AppendAudit(audit);
  NoteStoreResult(s);
  RETURN_IF_ERROR(s);
  absl::Status held = HeldStatus(request);
  approvals_.Add(std::move(request));
  return held;
}

void Controller::StampApproval(const Approval* approval, AuditEntry* audit) {
  if (approval == nullptr) return;
  audit->set_approval_request_id(approval->request->id());
  audit->set_approved_by(std::string(approval->approver));
  audit->set_reason(absl::StrCat(audit->reason(), " (approved by ",
                                 approval->approver, ": ", approval->reason,
                                 "; request ", approval->request->id(), ")"));
}

absl::StatusOr<Controller::ApprovalOutcome> Controller::Approve(
    absl::string_view request_id, absl::string_view approver,
    absl::string_view reason) {
  RETURN_IF_ERROR(ValidateId(request_id, "request_id"));
  RETURN_IF_ERROR(ValidateId(approver, "actor"));
  RETURN_IF_ERROR(ValidateRequiredText(reason, "reason"));
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ApprovalRequest request,
                   approvals_.Find(request_id, clock_->Now()));
  if (request.requested_by() == approver) {
    return absl::PermissionDeniedError(absl::StrCat(
        approver, " made approval request ", request_id,
        " and cannot approve it: the two-person rule needs a second, "
        "different principal"));
  }
  const Approval approval{&request, approver, reason};
  ApprovalOutcome out;
  const std::string& action = request.action();
  if (action == "start") {
    const config::v1::StartRolloutSpec& spec = request.start();
    StartRolloutRequest r;
    r.rollout_id = spec.rollout_id();
    r.release_id = spec.release_id();
    r.plan = spec.plan();
    r.baseline_release_id = spec.baseline_release_id();
    r.allow_no_baseline = spec.allow_no_baseline();
    r.start_pending = spec.start_pending();
    r.actor = request.requested_by();
    r.reason = request.reason();
    ASSIGN_OR_RETURN(out.rollout, StartRolloutLocked(r, &approval));
  } else if (action == "promote" || action == "resume") {
    ASSIGN_OR_RETURN(out.rollout,
                     ManualLocked(request.rollout_id(), request.requested_by(),
                                  request.reason(), action, &approval));
  } else if (action == "promote_to_completion") {
    ASSIGN_OR_RETURN(
        out.rollout,
        PromoteToCompletionLocked(request.rollout_id(), request.requested_by(),
                                  request.reason(), &approval));
  } else if (action == "clear_emergency_stop") {
    RETURN_IF_ERROR(ClearEmergencyStopLocked(request.content_type(),
                                             request.requested_by(),
                                             request.reason(), &approval));
  } else {
    return absl::InternalError(absl::StrCat("approval request ", request_id,
                                            " has an unknown action ",
                                            QuoteForError(action)));
  }
  approvals_.Settle(request_id);
  out.request = std::move(request);
  return out;
}

absl::Status Controller::RejectApproval(absl::string_view request_id,
                                        absl::string_view actor,
                                        absl::string_view reason) {
  RETURN_IF_ERROR(ValidateId(request_id, "request_id"));
  RETURN_IF_ERROR(ValidateId(actor, "actor"));
  RETURN_IF_ERROR(ValidateRequiredText(reason, "reason"));
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ApprovalRequest request,
                   approvals_.Find(request_id, clock_->Now()));
  AuditEntry audit = MakeAudit(actor, "approval_rejected", reason);
  audit.set_rollout_id(request.rollout_id());
  audit.set_approval_request_id(request.id());
  absl::Status s = store_->AppendAudit(audit);
  NoteStoreResult(s);
  RETURN_IF_ERROR(s);
  approvals_.Settle(request_id);
  return absl::OkStatus();
}

std::vector<ApprovalRequest> Controller::ListApprovals() {
  absl::MutexLock lock(&mu_);
  return approvals_.Pending(clock_->Now());
}

}  // namespace ringfence
