#include "ringfence/approvals.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ringfence/error_text.h"

namespace ringfence {
namespace {

constexpr absl::string_view kEveryContentType = "*";

absl::Status InvalidRule(int i, absl::string_view field,
                         absl::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat("approval_rules[", i, "]", field, ": ", reason));
}

std::string FormatWhen(const google::protobuf::Timestamp& t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromProto(t),
                          absl::UTCTimeZone());
}

}  // namespace

absl::Status ValidateApprovalRules(const FleetConfig& fleet) {
  if (fleet.approval_rules_size() > kMaxApprovalRules) {
    return absl::InvalidArgumentError(
        absl::StrCat("approval_rules: at most ", kMaxApprovalRules,
                     " rules (got ", fleet.approval_rules_size(), ")"));
  }
  absl::flat_hash_set<std::string> types;
  for (int i = 0; i < fleet.approval_rules_size(); ++i) {
    const ApprovalRule& rule = fleet.approval_rules(i);
    if (rule.content_type() != kEveryContentType) {
      absl::Status s = ValidateId(rule.content_type(), "content_type");
      if (!s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("approval_rules[", i, "].", s.message()));
      }
    }
    if (!types.insert(rule.content_type()).second) {
      return InvalidRule(
          i, ".content_type",
          absl::StrCat("a second rule for ", QuoteForError(rule.content_type()),
                       "; put its actions in one rule"));
    }
    if (rule.actions().empty()) {
      return InvalidRule(i, ".actions", "at least one action is required");
    }
    absl::flat_hash_set<int> seen;
    for (int j = 0; j < rule.actions_size(); ++j) {
      const int a = rule.actions(j);
      const std::string field = absl::StrCat(".actions[", j, "]");
      if (a == config::v1::GUARDED_ACTION_UNSPECIFIED ||
          !config::v1::GuardedAction_IsValid(a)) {
        return InvalidRule(i, field, "unknown action");
      }
      if (!seen.insert(a).second) {
        return InvalidRule(
            i, field,
            absl::StrCat("\"", GuardedActionName(static_cast<GuardedAction>(a)),
                         "\" is listed twice"));
      }
    }
    if (rule.has_window()) {
      const absl::Duration w = FromProto(rule.window());
      if (w < kMinApprovalWindow || w > kMaxApprovalWindow) {
        return InvalidRule(
            i, ".window",
            absl::StrCat("must be within [",
                         absl::FormatDuration(kMinApprovalWindow), ", ",
                         absl::FormatDuration(kMaxApprovalWindow), "] (got ",
                         absl::FormatDuration(w), ")"));
      }
    }
  }
  return absl::OkStatus();
}

std::string GuardedActionName(GuardedAction action) {
  switch (action) {
    case config::v1::GUARDED_PROMOTE:
      return "promote";
    case config::v1::GUARDED_RESUME:
      return "resume";
    case config::v1::GUARDED_CLEAR_EMERGENCY_STOP:
      return "clear_emergency_stop";
    case config::v1::GUARDED_START_WITH_BASELINE:
      return "start_with_baseline";
    case config::v1::GUARDED_DISABLE_BUILTIN_SIGNAL:
      return "disable_builtin_signal";
    default:
      return "unspecified";
  }
}

std::optional<ApprovalRequest> ApprovalRequestFromStatus(
    const absl::Status& status) {
  const auto payload = status.GetPayload(kApprovalRequestTypeUrl);
  if (!payload.has_value()) return std::nullopt;
  ApprovalRequest request;
  if (!request.ParseFromString(std::string(*payload))) return std::nullopt;
  return request;
}

absl::Status HeldStatus(const ApprovalRequest& request) {
  std::vector<std::string> guarded;
  for (const int g : request.guarded()) {
    guarded.push_back(GuardedActionName(static_cast<GuardedAction>(g)));
  }
  const std::string subject =
      request.action() == "clear_emergency_stop"
          ? absl::StrCat("clearing the emergency stop of ",
                         request.content_type())
      : request.action() == "start"
          ? absl::StrCat("starting a rollout of release ",
                         request.start().release_id())
          : absl::StrCat(request.action(), " of rollout ",
                         request.rollout_id());
  absl::Status s = absl::FailedPreconditionError(
      absl::StrCat(subject,
                   " needs the approval of a second principal (two-person rule "
                   "for ",
                   request.content_type(), ": ", absl::StrJoin(guarded, ", "),
                   "); nothing was done. Approval request ", request.id(),
                   " is pending until ", FormatWhen(request.expires_at()),
                   "; another principal approves it (ringctl approve ",
                   request.id(), " --reason=...)"));
  s.SetPayload(kApprovalRequestTypeUrl,
               absl::Cord(request.SerializeAsString()));
  return s;
}

ApprovalBook::ApprovalBook(const FleetConfig& fleet) {
  for (const ApprovalRule& r : fleet.approval_rules()) {
    Rule rule;
    for (const int a : r.actions()) {
      rule.actions.push_back(static_cast<GuardedAction>(a));
    }
    rule.window =
        r.has_window() ? FromProto(r.window()) : kDefaultApprovalWindow;
    rules_[r.content_type()] = std::move(rule);
  }
}

ApprovalBook::Need ApprovalBook::Needs(
    absl::string_view content_type,
    absl::Span<const GuardedAction> actions) const {
  Need need;
  bool windowed = false;
  for (const GuardedAction a : actions) {
    bool guarded = false;
    for (absl::string_view key : {content_type, kEveryContentType}) {
      auto it = rules_.find(key);
      if (it == rules_.end()) continue;
      const Rule& rule = it->second;
      if (std::find(rule.actions.begin(), rule.actions.end(), a) ==
          rule.actions.end()) {
        continue;
      }
      guarded = true;
      need.window = windowed ? std::min(need.window, rule.window) : rule.window;
      windowed = true;
    }
    if (guarded) need.guarded.push_back(a);
  }
  return need;
}

void ApprovalBook::Replay(const AuditEntry& entry) {
  if (entry.action() == "approval_requested" && entry.has_approval_request()) {
    Add(entry.approval_request());
  }
  if (!entry.approval_request_id().empty()) {
    Settle(entry.approval_request_id());
  }
}

void ApprovalBook::Add(ApprovalRequest request) {
  std::string id = request.id();
  pending_[std::move(id)] = std::move(request);
}

void ApprovalBook::Settle(absl::string_view request_id) {
  pending_.erase(request_id);
}

absl::StatusOr<ApprovalRequest> ApprovalBook::Find(absl::string_view id,
                                                   absl::Time now) const {
  auto it = pending_.find(id);
  if (it == pending_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "request_id: no pending approval request ", QuoteForError(id),
        " (never made, already approved or "
        "rejected, or made before a restart "
        "without approval rules)"));
  }
  if (FromProto(it->second.expires_at()) <= now) {
    return absl::FailedPreconditionError(
        absl::StrCat("approval request ", id, " expired at ",
                     FormatWhen(it->second.expires_at()),
                     ": nothing was done; the requester asks again"));
  }
  return it->second;
}

std::vector<ApprovalRequest> ApprovalBook::Pending(absl::Time now) {
  std::vector<ApprovalRequest> out;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (FromProto(it->second.expires_at()) <= now) {
      pending_.erase(it++);
      continue;
    }
    out.push_back(it->second);
    ++it;
  }
  std::sort(out.begin(), out.end(),
            [](const ApprovalRequest& a, const ApprovalRequest& b) {
              const absl::Time ta = FromProto(a.requested_at());
              const absl::Time tb = FromProto(b.requested_at());
              return ta != tb ? ta < tb : a.id() < b.id();
            });
  return out;
}

std::string NewApprovalRequestId() {
  thread_local absl::BitGen gen;
  return absl::StrFormat("apr-%016x", absl::Uniform<uint64_t>(gen));
}

}  // namespace ringfence
