// The two-person rule: risky actions that wait for a second principal.
//
// A vendor configures, per content type (FleetConfig.approval_rules), which
// actions are guarded (config.proto GuardedAction: promote overrides,
// resumes, clearing an emergency stop, starting with a non-default baseline,
// switching a built-in signal off). A guarded call is checked exactly like
// any call (ids, states, the halt rules); then, instead of acting, the
// controller records an ApprovalRequest in the audit log (action
// "approval_requested") and answers FAILED_PRECONDITION with the request as
// a status payload (ApprovalRequestFromStatus). Nothing else changes.
//
// Another principal approves it before it expires (Controller::Approve):
// the action then runs as if called by the requester, through the same
// checks as a fresh call, and its own audit entry names the request and the
// approver, in the same transaction as the state change. So a request is
// settled exactly when a later audit entry names it (the approved action's,
// or "approval_rejected"), and the pending set is rebuilt from the audit log
// at a restart (ApprovalBook::Replay). A principal never approves its own
// request (PERMISSION_DENIED); principals are the actors of the
// authentication layer (token names, certificate identities), so two tokens
// held by one person are two principals: issue one per person.
//
// Thread safety: ApprovalBook is not thread-safe (the controller's lock
// guards it); the functions are pure.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ringfence/model.h"

namespace ringfence {

using config::v1::ApprovalRequest;
using config::v1::ApprovalRule;
using config::v1::GuardedAction;

// The status payload (absl::Status::SetPayload) of a held action: a
// serialized ApprovalRequest. Over gRPC it is in the error details
// (google.rpc.Status), like every payload (service/status_map.h).
inline constexpr char kApprovalRequestTypeUrl[] =
    "type.googleapis.com/ringfence.config.v1.ApprovalRequest";

// A rule's window when it names none.
inline constexpr absl::Duration kDefaultApprovalWindow = absl::Hours(1);
inline constexpr absl::Duration kMinApprovalWindow = absl::Minutes(1);
inline constexpr absl::Duration kMaxApprovalWindow = absl::Hours(24 * 7);
inline constexpr int kMaxApprovalRules = 64;

// ValidateApprovalRules
//
// INVALID_ARGUMENT naming the field (under "approval_rules[i]") unless:
// at most kMaxApprovalRules rules; content_type an id or "*", once each;
// at least one action, each known and listed once; window unset or within
// [kMinApprovalWindow, kMaxApprovalWindow].
absl::Status ValidateApprovalRules(const FleetConfig& fleet);

// The name of a guarded action ("promote", "start_with_baseline", ...).
std::string GuardedActionName(GuardedAction action);

// ApprovalRequestFromStatus
//
// The request a held call answered with, if `status` carries one.
std::optional<ApprovalRequest> ApprovalRequestFromStatus(
    const absl::Status& status);

// HeldStatus
//
// FAILED_PRECONDITION saying what waits for whom and until when, with
// `request` as its payload.
absl::Status HeldStatus(const ApprovalRequest& request);

// ApprovalBook: the rules of a fleet and the requests pending under them.
class ApprovalBook {
 public:
  // REQUIRES: ValidateApprovalRules(fleet) is OK.
  explicit ApprovalBook(const FleetConfig& fleet);

  // True if some rule exists (otherwise nothing is ever guarded).
  bool has_rules() const { return !rules_.empty(); }

  // Of `actions`, those guarded for `content_type` (in the given order),
  // and the window for a request of them: the shortest window of the rules
  // that guard them.
  struct Need {
    std::vector<GuardedAction> guarded;
    absl::Duration window = kDefaultApprovalWindow;
  };
  Need Needs(absl::string_view content_type,
             absl::Span<const GuardedAction> actions) const;

  // Replays one audit entry, in log order: an "approval_requested" entry
  // adds its request; an entry naming approval_request_id settles it.
  void Replay(const AuditEntry& entry);
  void Add(ApprovalRequest request);
  void Settle(absl::string_view request_id);

  // The pending request `id`: NOT_FOUND if there is none (never requested,
  // or settled), FAILED_PRECONDITION if it expired at or before `now`.
  absl::StatusOr<ApprovalRequest> Find(absl::string_view id,
                                       absl::Time now) const;
  // Requests pending at `now`, oldest first; forgets the expired ones.
  std::vector<ApprovalRequest> Pending(absl::Time now);

 private:
  struct Rule {
    std::vector<GuardedAction> actions;
    absl::Duration window;
  };
  absl::flat_hash_map<std::string, Rule> rules_;  // by content type or "*"
  absl::flat_hash_map<std::string, ApprovalRequest> pending_;
};

// NewApprovalRequestId
//
// "apr-" and 16 random lower-case hex digits.
std::string NewApprovalRequestId();

}  // namespace ringfence
