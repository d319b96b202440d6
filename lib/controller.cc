#include "ringfence/controller.h"

#include <algorithm>
#include <cmath>

#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "controller_internal.h"
#include "ringfence/assign_rules.h"
#include "ringfence/error_text.h"
#include "ringfence/gate.h"
#include "ringfence/hash.h"
#include "ringfence/policy.h"
#include "ringfence/status_macros.h"

namespace ringfence {

using config::v1::ABORTED;
using config::v1::COMPLETED;
using config::v1::HALT;
using config::v1::HALTED;
using config::v1::HOLD;
using config::v1::PAUSED;
using config::v1::PENDING;
using config::v1::PROMOTE;
using config::v1::RUNNING;

using controller_internal::Gated;
using controller_internal::IsActive;
using controller_internal::PostCompletionWatch;
using controller_internal::SignalsOf;
using controller_internal::Watching;

absl::string_view AssignReasonName(AssignReason r) {
  switch (r) {
    case AssignReason::kNoRelease:
      return "no_release";
    case AssignReason::kNotTargeted:
      return "not_targeted";
    case AssignReason::kPinned:
      return "pinned";
    case AssignReason::kNotInAudience:
      return "not_in_audience";
    case AssignReason::kNotYet:
      return "not_yet";
    case AssignReason::kWaitingForPacing:
      return "waiting_for_pacing";
    case AssignReason::kExposed:
      return "exposed";
    case AssignReason::kStageOpen:
      return "stage_open";
    case AssignReason::kCompleted:
      return "completed";
    case AssignReason::kPaused:
      return "paused";
    case AssignReason::kRolledBack:
      return "rolled_back";
    case AssignReason::kEmergencyStop:
      return "emergency_stop";
    case AssignReason::kStoreUnavailable:
      return "store_unavailable";
    case AssignReason::kNotWatched:
      return "not_watched";
  }
  return "unknown";
}

Controller::Controller(Store* store, const Clock* clock,
                       ControllerOptions options)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      tenants_(options_.fleet),
      approvals_(options_.fleet) {}

Controller::~Controller() {
  std::vector<std::pair<uint64_t, std::function<void(absl::Status)>>> waiting;
  {
    absl::MutexLock lock(&acks_mu_);
    waiting.swap(acks_);
  }
  for (auto& [batch, done] : waiting) {
    done(absl::UnavailableError(
        "the server stopped before this batch was checkpointed; re-send it"));
  }
}

void Controller::AfterCheckpoint(std::function<void(absl::Status)> done) {
  const uint64_t batch = ingested_batches_.load(std::memory_order_acquire);
  {
    absl::MutexLock lock(&acks_mu_);
    if (batch > durable_batches_) {
      acks_.emplace_back(batch, std::move(done));
      return;
    }
  }
  done(absl::OkStatus());
}

absl::StatusOr<std::unique_ptr<Controller>> Controller::Create(
    Store* store, const Clock* clock, ControllerOptions options) {
  RETURN_IF_ERROR(ValidateFleetConfig(options.fleet));
  std::unique_ptr<Controller> c(
      new Controller(store, clock, std::move(options)));
  RETURN_IF_ERROR(c->Load());
  return c;
}

absl::Status Controller::Load() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<ringfence::EmergencyStop> stops,
                   store_->ListEmergencyStops());
  for (auto& s : stops) stops_[s.content_type] = s;
  RETURN_IF_ERROR(LoadApprovalsLocked());
  ASSIGN_OR_RETURN(std::vector<Rollout> rollouts, store_->ListRollouts());
  const absl::Time now = clock_->Now();
  for (const Rollout& r : rollouts) {
    ++rollout_counter_;
    ASSIGN_OR_RETURN(Runtime * rt, NewRuntimeLocked(r));
    if (!Gated(r, now)) continue;
    ASSIGN_OR_RETURN(std::vector<Exposure> exposures,
                     store_->ListExposures(r.id()));
    ASSIGN_OR_RETURN(std::vector<HostEvidence> evidence,
                     store_->ListHostEvidence(r.id()));
    config::v1::TrackerCheckpoint checkpoint;
    bool have_checkpoint = false;
    absl::StatusOr<std::string> cp = store_->GetCheckpoint(r.id());
    if (cp.ok()) {
      if (!checkpoint.ParseFromString(*cp)) {
        return absl::DataLossError(absl::StrCat(
            "rollout \"", r.id(), "\": unparseable telemetry checkpoint"));
      }
      have_checkpoint = true;
    } else if (!absl::IsNotFound(cp.status())) {
      return cp.status();
    }
    // Every counted host, exposure and test is restored as of the last
    // checkpoint; hosts count as seen at the restart (the time we were down
    // is not their silence; if they stay silent from now on, they are
    // caught).
    rt->tracker->Restore(have_checkpoint ? &checkpoint : nullptr, evidence,
                         exposures);
    ASSIGN_OR_RETURN(std::vector<Decision> decisions,
                     store_->ListDecisions(r.id(), 0));
    if (!decisions.empty()) {
      rt->next_decision_seq = decisions.back().seq() + 1;
    }
    UpdateBudgetLocked(rt);
  }
  PublishLocked();
  return absl::OkStatus();
}

absl::StatusOr<const Release*> Controller::ReleaseLocked(absl::string_view id) {
  auto it = releases_.find(id);
  if (it != releases_.end()) return it->second.get();
  ASSIGN_OR_RETURN(Release r, store_->GetRelease(id));
  auto owned = std::make_unique<const Release>(std::move(r));
  const Release* p = owned.get();
  releases_.emplace(std::string(id), std::move(owned));
  return p;
}

absl::StatusOr<Controller::Runtime*> Controller::NewRuntimeLocked(
    const Rollout& rollout) {
  auto rt = std::make_unique<Runtime>(rollout.id());
  rt->record = rollout;
  ASSIGN_OR_RETURN(rt->release, ReleaseLocked(rollout.release_id()));
  if (!rollout.baseline_release_id().empty()) {
    ASSIGN_OR_RETURN(rt->baseline,
                     ReleaseLocked(rollout.baseline_release_id()));
  }
  rt->index = AudienceIndex::Build(rollout.plan(), rollout.salt());
  rt->targeting =
      std::make_unique<const CompiledTargeting>(rt->release->targeting());
  rt->policies = EffectivePolicies(rollout.plan());
  TrackerOptions topts;
  topts.num_stages = rollout.plan().stages_size() + 1;
  topts.signals = SignalsOf(rt->policies);
  topts.expected_hosts =
      Gated(rollout, clock_->Now()) ? options_.expected_hosts : 0;
  topts.release_id = rollout.release_id();
  topts.epoch = FromProto(rollout.created_at());
  topts.control_by_check_in = true;
  rt->tracker = std::make_unique<RolloutTracker>(topts, clock_);
  Runtime* p = rt.get();
  ConfigureStageLocked(p);
  runtimes_.push_back(std::move(rt));
  by_id_[rollout.id()] = p;
  return p;
}

void Controller::ConfigureStageLocked(Runtime* rt) {
  const Plan& plan = rt->record.plan();
  const int stage = static_cast<int>(rt->record.stage());
  const GatePolicy& policy =
      rt->policies[std::min<size_t>(stage, rt->policies.size() - 1)];
  rt->tracker->SetRules(
      std::vector<SignalRule>(policy.signals().begin(), policy.signals().end()),
      policy.alpha());
  rt->tracker->SetBootLoopAttempts(policy.boot_loop_attempts());
  rt->tracker->SetMaxTelemetryLag(FromProto(policy.max_telemetry_lag()));
  rt->tracker->SetSilenceTimeout(FromProto(policy.silence_timeout()));
  rt->tracker->SetCurrentStage(stage);
  rt->tracker->SetMaxStaleness(FromProto(policy.max_staleness()));
  rt->tracker->SetHealthyAfter(
      FromProto(EffectivePacing(plan, stage).healthy_after()));
  rt->window_start = absl::InfinitePast();
}

void Controller::UpdateBudgetLocked(Runtime* rt) {
  const Plan& plan = rt->record.plan();
  const int stage = static_cast<int>(rt->record.stage());
  const Pacing pacing = EffectivePacing(plan, stage);
  const uint64_t exposed = rt->tracker->CohortGranted(stage);
  const uint64_t healthy = rt->tracker->CohortHealthy(stage);
  double budget = pacing.initial_hosts() + pacing.growth_per_healthy_host() *
                                               static_cast<double>(healthy);
  if (pacing.max_new_hosts_per_minute() > 0) {
    const absl::Time now = clock_->Now();
    if (now - rt->window_start >= absl::Minutes(1)) {
      rt->window_start = now;
      rt->window_base = exposed;
    }
    budget = std::min(budget,
                      static_cast<double>(rt->window_base +
                                          pacing.max_new_hosts_per_minute()));
  }
  const uint64_t b = static_cast<uint64_t>(std::min(budget, 1e18));
  rt->budget.store(b, std::memory_order_release);
  rt->record.set_stage_exposure_budget(b);
}

void Controller::PublishLocked() {
  auto view = std::make_unique<View>();
  const absl::Time now = clock_->Now();
  for (const auto& owned : runtimes_) {
    Runtime* rt = owned.get();
    ContentView& cv = view->content[rt->record.content_type()];
    // Runtimes are in creation order: the latest rollout wins.
    cv.rt = rt;
    FoldRollout(rt->record, &rt->id, rt->release, rt->baseline, rt->index.get(),
                rt->targeting.get(), Watching(rt->record, now), &cv.cs);
  }
  for (const auto& [type, stop] : stops_) {
    view->content[type].cs.emergency_stop = true;
  }
  view_.store(view.get(), std::memory_order_release);
  views_.push_back(std::move(view));
}

void Controller::NoteStoreResult(const absl::Status& s) {
  store_healthy_.store(s.ok(), std::memory_order_release);
}

AuditEntry Controller::MakeAudit(absl::string_view actor,
                                 absl::string_view action,
                                 absl::string_view reason) const {
  AuditEntry a;
  *a.mutable_at() = ToProtoTime(clock_->Now());
  a.set_actor(std::string(actor));
  a.set_action(std::string(action));
  a.set_reason(std::string(reason));
  return a;
}

Controller::Runtime* Controller::FindLocked(absl::string_view id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

// ---- Releases -----------------------------------------------------------

absl::Status Controller::CreateRelease(const Release& release,
                                       absl::string_view actor) {
  RETURN_IF_ERROR(ValidateRelease(release));
  RETURN_IF_ERROR(ValidateId(actor, "actor"));
  Release r = release;
  if (!r.has_created_at()) *r.mutable_created_at() = ToProtoTime(clock_->Now());
  AuditEntry audit = MakeAudit(actor, "create_release", "");
  audit.set_reason(absl::StrCat("release ", r.id(), " of ", r.content_type()));
  absl::MutexLock lock(&mu_);
  absl::Status s = store_->PutRelease(r, audit);
  if (!absl::IsAlreadyExists(s)) NoteStoreResult(s);
  return s;
}

absl::Status Controller::RecordReleaseRejected(const Release& release,
                                               absl::string_view actor,
                                               absl::string_view why) {
  RETURN_IF_ERROR(ValidateId(actor, "actor"));
  constexpr size_t kMaxWhy = 4000;
  AuditEntry audit = MakeAudit(actor, "reject_release", "");
  audit.set_reason(absl::StrCat(
      "release ", absl::CHexEscape(release.id()), " of ",
      absl::CHexEscape(release.content_type()), " refused: ",
      why.size() > kMaxWhy ? absl::StrCat(why.substr(0, kMaxWhy), "...")
                           : std::string(why)));
  absl::MutexLock lock(&mu_);
  absl::Status s = store_->AppendAudit(audit);
  NoteStoreResult(s);
  return s;
}

absl::StatusOr<Release> Controller::GetRelease(absl::string_view id) {
  return store_->GetRelease(id);
}

absl::StatusOr<std::vector<Release>> Controller::ListReleases() {
  return store_->ListReleases();
}

// ---- Rollouts -----------------------------------------------------------

absl::StatusOr<Rollout> Controller::StartRollout(
    const StartRolloutRequest& req) {
  RETURN_IF_ERROR(ValidateId(req.release_id, "release_id"));
  if (!req.rollout_id.empty()) {
    RETURN_IF_ERROR(ValidateId(req.rollout_id, "rollout_id"));
  }
  RETURN_IF_ERROR(ValidateId(req.actor, "actor"));
  RETURN_IF_ERROR(ValidateRequiredText(req.reason, "reason"));
  {
    absl::Status s = ValidatePlan(req.plan);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("plan.", s.message()));
    }
  }
  absl::MutexLock lock(&mu_);
  return StartRolloutLocked(req, nullptr);
}

absl::StatusOr<Rollout> Controller::StartRolloutLocked(
    const StartRolloutRequest& req, const Approval* approval) {
  auto release = ReleaseLocked(req.release_id);
  if (!release.ok()) {
    if (absl::IsNotFound(release.status())) {
      return absl::NotFoundError(absl::StrCat("release_id: release \"",
                                              req.release_id, "\" not found"));
    }
    return release.status();
  }
  const std::string& type = (*release)->content_type();
  if (auto it = stops_.find(type); it != stops_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("content type \"", type, "\" is under emergency stop (by ",
                     it->second.actor, ": ", it->second.reason,
                     "); clear the stop before starting a rollout"));
  }
  // The baseline (what hosts fall back to) must be proven: a release whose
  // rollout completed and was not halted since. Default: the latest such
  // release of the content type.
  std::string baseline = req.baseline_release_id;
  bool vouched = false;
  std::vector<Runtime*> watched;  // earlier rollouts still under watch
  const absl::Time now = clock_->Now();
  for (const auto& rt : runtimes_) {
    const Rollout& r = rt->record;
    if (r.content_type() != type) continue;
    if (IsActive(r.state())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "content type \"", type, "\" already has an active rollout \"",
          r.id(), "\" (", RolloutStateName(r.state()), ", stage ",
          StageName(r.plan(), static_cast<int>(r.stage())),
          "); finish, abort or wait for it first"));
    }
    if (Watching(r, now)) watched.push_back(rt.get());
    if (req.baseline_release_id.empty() && r.state() == COMPLETED) {
      baseline = r.release_id();
    }
    if (r.release_id() == req.release_id && r.state() == COMPLETED) {
      return absl::FailedPreconditionError(
          absl::StrCat("release \"", req.release_id,
                       "\" was already rolled out by \"", r.id(), "\""));
    }
  }
  if (!baseline.empty()) {
    auto b = ReleaseLocked(baseline);
    if (!b.ok()) {
      return absl::NotFoundError(absl::StrCat("baseline_release_id: release \"",
                                              baseline, "\" not found"));
    }
    if ((*b)->content_type() != type) {
      return absl::InvalidArgumentError(
          absl::StrCat("baseline_release_id: release \"", baseline,
                       "\" is of content type \"", (*b)->content_type(),
                       "\", not \"", type, "\""));
    }
    if (baseline == req.release_id) {
      return absl::InvalidArgumentError(
          "baseline_release_id: must differ from release_id");
    }
    const Rollout* last = nullptr;    // the baseline's latest rollout
    const Rollout* proven = nullptr;  // the type's latest completed one
    for (const auto& rt : runtimes_) {
      if (rt->record.release_id() == baseline) last = &rt->record;
      if (rt->record.content_type() == type &&
          rt->record.state() == COMPLETED) {
        proven = &rt->record;
      }
    }
    if (last != nullptr && last->state() != COMPLETED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "baseline_release_id: release \"", baseline,
          "\" is not proven: its rollout \"", last->id(), "\" is ",
          RolloutStateName(last->state()),
          last->reason().empty() ? std::string()
                                 : absl::StrCat(" (", last->reason(), ")"),
          "; a baseline must be a release whose rollout completed and was "
          "not halted since"));
    }
    if (last == nullptr && proven != nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("baseline_release_id: release \"", baseline,
                       "\" never completed a rollout, and \"",
                       proven->release_id(), "\" (rollout ", proven->id(),
                       ") did: fall back to a proven release, or roll \"",
                       baseline, "\" out first"));
    }
    // Never rolled out, and nothing of the type ever completed: the release
    // the fleet ran before ringfence, vouched for by the operator.
    vouched = last == nullptr;
  }
  if (baseline.empty() && !req.allow_no_baseline) {
    return absl::FailedPreconditionError(absl::StrCat(
        "baseline_release_id: no release of ", type,
        " completed a rollout, so a halt or abort of this one would tell "
        "every host to unload ",
        type,
        " (there is nothing to fall back to); name the release the fleet "
        "runs as the baseline, or acknowledge with allow_no_baseline "
        "(ringctl: --no-baseline)"));
  }
  std::string id = req.rollout_id;
  if (id.empty()) id = absl::StrCat(type, "@", rollout_counter_ + 1);
  if (FindLocked(id) != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("rollout_id: rollout \"", id, "\" already exists"));
  }
  const std::vector<DisabledSignal> disabled = DisabledSignals(req.plan);
  {
    std::vector<GuardedAction> risky;
    if (!req.baseline_release_id.empty() || baseline.empty()) {
      risky.push_back(config::v1::GUARDED_START_WITH_BASELINE);
    }
    if (!disabled.empty())
      risky.push_back(config::v1::GUARDED_DISABLE_BUILTIN_SIGNAL);
    ApprovalRequest held;
    held.set_action("start");
    held.set_rollout_id(req.rollout_id);
    held.set_requested_by(req.actor);
    held.set_reason(req.reason);
    config::v1::StartRolloutSpec* spec = held.mutable_start();
    spec->set_rollout_id(req.rollout_id);
    spec->set_release_id(req.release_id);
    *spec->mutable_plan() = req.plan;
    spec->set_baseline_release_id(req.baseline_release_id);
    spec->set_allow_no_baseline(req.allow_no_baseline);
    spec->set_start_pending(req.start_pending);
    RETURN_IF_ERROR(MaybeHoldLocked(approval, type, risky, std::move(held)));
  }
  Rollout r;
  r.set_id(id);
  r.set_release_id(req.release_id);
  r.set_content_type(type);
  r.set_baseline_release_id(baseline);
  r.set_baseline_vouched(vouched);
  *r.mutable_plan() = req.plan;
  r.set_state(req.start_pending ? PENDING : RUNNING);
  r.set_stage(0);
  *r.mutable_created_at() = ToProtoTime(now);
  *r.mutable_stage_started_at() = ToProtoTime(now);
  *r.mutable_updated_at() = ToProtoTime(now);
  r.set_salt(id);
  r.set_version(1);
  // A later rollout takes the content type's hosts under its own gate:
  // earlier watches end here, on record (so the baseline stays proven).
  for (Runtime* w : watched) {
    Rollout ended = w->record;
    *ended.mutable_watch_until() = ToProtoTime(now);
    RETURN_IF_ERROR(CommitLocked(
        w, std::move(ended), req.actor, "watch_end",
        absl::StrCat("post-completion watch ended early: rollout ", id,
                     " of release ", req.release_id, " starts"),
        nullptr));
  }
  // What the record must say about this start beyond the operator's reason.
  std::string notes;
  for (const DisabledSignal& d : disabled) {
    absl::StrAppend(&notes, "; built-in signal \"", d.signal,
                    "\" switched off in ", StageName(req.plan, d.stage), ": ",
                    d.reason);
  }
  if (baseline.empty()) {
    absl::StrAppend(&notes, "; no baseline (no earlier release of ", type,
                    " completed a rollout): a halt or abort tells every host "
                    "to unload ",
                    type);
  } else if (vouched) {
    absl::StrAppend(&notes, "; baseline ", baseline, " vouched for by ",
                    req.actor,
                    ", not proven by a rollout: hosts outside the rollout keep "
                    "what they run, and only a halt or abort tells hosts to "
                    "run it");
  }
  AuditEntry audit =
      MakeAudit(req.actor, "start", absl::StrCat(req.reason, notes));
  audit.set_rollout_id(id);
  audit.set_to_state(r.state());
  StampApproval(approval, &audit);
  absl::Status s = store_->CreateRollout(r, audit);
  NoteStoreResult(s);
  RETURN_IF_ERROR(s);
  ++rollout_counter_;
  ASSIGN_OR_RETURN(Runtime * rt, NewRuntimeLocked(r));
  UpdateBudgetLocked(rt);
  PublishLocked();
  return rt->record;
}

absl::Status Controller::CommitLocked(Runtime* rt, Rollout next,
                                      absl::string_view actor,
                                      absl::string_view action,
                                      absl::string_view reason,
                                      const Decision* decision,
                                      const Approval* approval) {
  const absl::Time now = clock_->Now();
  const Rollout& cur = rt->record;
  next.set_version(cur.version() + 1);
  *next.mutable_updated_at() = ToProtoTime(now);
  if (IsTerminal(next.state()) && !IsTerminal(cur.state())) {
    *next.mutable_finished_at() = ToProtoTime(now);
  }
  AuditEntry audit = MakeAudit(actor, action, reason);
  audit.set_rollout_id(cur.id());
  audit.set_from_state(cur.state());
  audit.set_to_state(next.state());
  audit.set_from_stage(cur.stage());
  audit.set_to_stage(next.stage());
  if (decision != nullptr) *audit.mutable_decision() = *decision;
  StampApproval(approval, &audit);
  absl::Status s =
      store_->CommitTransition(next, cur.version(), audit, decision);
  NoteStoreResult(s);
  RETURN_IF_ERROR(s);
  const bool stage_changed = next.stage() != cur.stage();
  rt->record = std::move(next);
  if (stage_changed) ConfigureStageLocked(rt);
  UpdateBudgetLocked(rt);
  PublishLocked();
  return absl::OkStatus();
}

absl::StatusOr<Rollout> Controller::ManualLocked(
    absl::string_view id, absl::string_view actor, absl::string_view reason,
    absl::string_view action, const Approval* approval,
    absl::string_view request_action) {
  RETURN_IF_ERROR(ValidateId(id, "rollout_id"));
  RETURN_IF_ERROR(ValidateId(actor, "actor"));
  RETURN_IF_ERROR(ValidateRequiredText(reason, "reason"));
  Runtime* rt = FindLocked(id);
  if (rt == nullptr) {
    return absl::NotFoundError(absl::StrCat("rollout \"", id, "\" not found"));
  }
  const Rollout& cur = rt->record;
  const RolloutState state = cur.state();
  auto wrong_state = [&](absl::string_view allowed) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot ", action, " rollout \"", id, "\": it is ",
        RolloutStateName(state), " (", action, " needs ", allowed, ")"));
  };
  Rollout next = cur;
  const absl::Time now = clock_->Now();
  if (action == "pause") {
    if (state != RUNNING) return wrong_state("running");
    next.set_state(PAUSED);
    next.set_reason(absl::StrCat("paused by ", actor, ": ", reason));
  } else if (action == "resume") {
    if (state != PAUSED && state != PENDING)
      return wrong_state("paused or pending");
    next.set_state(RUNNING);
    next.set_reason("");
    if (state == PENDING) *next.mutable_stage_started_at() = ToProtoTime(now);
  } else if (action == "abort") {
    if (!IsActive(state)) return wrong_state("pending, running or paused");
    next.set_state(ABORTED);
    next.set_reason(absl::StrCat("aborted by ", actor, ": ", reason));
  } else if (action == "promote") {
    if (state != RUNNING && state != PAUSED)
      return wrong_state("running or paused");
    next.set_overridden(true);
    if (static_cast<int>(cur.stage()) >= cur.plan().stages_size()) {
      next.set_state(COMPLETED);
      *next.mutable_watch_until() =
          ToProtoTime(now + PostCompletionWatch(cur.plan()));
    } else {
      next.set_stage(cur.stage() + 1);
      *next.mutable_stage_started_at() = ToProtoTime(now);
    }
  }
  if (action == "promote" || action == "resume") {
    // An operator can override the gate's holds, never its halts: the halt
    // rules run on all evidence received so far, under the same lock as
    // the transition. If they trip, the rollout halts instead.
    ASSIGN_OR_RETURN(Decision d, EvaluateLocked(rt, EvaluateMode::kHaltsOnly));
    if (d.verdict() == HALT) {
      return absl::FailedPreconditionError(absl::StrCat(
          action,
          " refused: the gate's halt rules tripped on the evidence "
          "already received, and rollout \"",
          id, "\" is now HALTED. ", d.summary()));
    }
    ApprovalRequest held;
    held.set_action(
        std::string(request_action.empty() ? action : request_action));
    held.set_rollout_id(std::string(id));
    held.set_requested_by(std::string(actor));
    held.set_reason(std::string(reason));
    const GuardedAction guarded = action == "promote"
                                      ? config::v1::GUARDED_PROMOTE
                                      : config::v1::GUARDED_RESUME;
    RETURN_IF_ERROR(MaybeHoldLocked(approval, cur.content_type(), {guarded},
                                    std::move(held)));
  }
  RETURN_IF_ERROR(CommitLocked(rt, std::move(next), actor, action, reason,
                               nullptr, approval));
  return rt->record;
}

absl::StatusOr<Rollout> Controller::Pause(absl::string_view id,
                                          absl::string_view actor,
                                          absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  return ManualLocked(id, actor, reason, "pause");
}

absl::StatusOr<Rollout> Controller::Resume(absl::string_view id,
                                           absl::string_view actor,
                                           absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  return ManualLocked(id, actor, reason, "resume");
}

absl::StatusOr<Rollout> Controller::Abort(absl::string_view id,
                                          absl::string_view actor,
                                          absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  return ManualLocked(id, actor, reason, "abort");
}

absl::StatusOr<Rollout> Controller::Promote(absl::string_view id,
                                            absl::string_view actor,
                                            absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  return ManualLocked(id, actor, reason, "promote");
}

absl::StatusOr<Rollout> Controller::PromoteToCompletion(
    absl::string_view id, absl::string_view actor, absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  return PromoteToCompletionLocked(id, actor, reason, nullptr);
}

absl::StatusOr<Rollout> Controller::PromoteToCompletionLocked(
    absl::string_view id, absl::string_view actor, absl::string_view reason,
    const Approval* approval) {
  while (true) {
    ASSIGN_OR_RETURN(Rollout r,
                     ManualLocked(id, actor, reason, "promote", approval,
                                  "promote_to_completion"));
    if (r.state() == COMPLETED) return r;
  }
}

absl::Status Controller::EmergencyStop(absl::string_view content_type,
                                       absl::string_view actor,
                                       absl::string_view reason) {
  RETURN_IF_ERROR(ValidateId(content_type, "content_type"));
  RETURN_IF_ERROR(ValidateId(actor, "actor"));
  RETURN_IF_ERROR(ValidateRequiredText(reason, "reason"));
  absl::MutexLock lock(&mu_);
  ringfence::EmergencyStop stop;
  stop.content_type = std::string(content_type);
  stop.actor = std::string(actor);
  stop.reason = std::string(reason);
  stop.at = clock_->Now();
  AuditEntry audit = MakeAudit(actor, "emergency_stop", reason);
  audit.set_reason(absl::StrCat(content_type, ": ", reason));
  absl::Status s = store_->SetEmergencyStop(stop, audit);
  NoteStoreResult(s);
  RETURN_IF_ERROR(s);
  stops_[stop.content_type] = stop;
  PublishLocked();  // takes effect for assignments now
  const absl::Time now = clock_->Now();
  for (const auto& owned : runtimes_) {
    Runtime* rt = owned.get();
    if (rt->record.content_type() != content_type || !Gated(rt->record, now)) {
      continue;
    }
    Rollout next = rt->record;
    next.set_state(HALTED);
    next.set_reason(absl::StrCat("emergency stop of ", content_type, " by ",
                                 actor, ": ", reason));
    RETURN_IF_ERROR(CommitLocked(rt, std::move(next), actor, "emergency_stop",
                                 reason, nullptr));
  }
  return absl::OkStatus();
}

absl::Status Controller::ClearEmergencyStop(absl::string_view content_type,
                                            absl::string_view actor,
                                            absl::string_view reason) {
  RETURN_IF_ERROR(ValidateId(content_type, "content_type"));
  RETURN_IF_ERROR(ValidateId(actor, "actor"));
  RETURN_IF_ERROR(ValidateRequiredText(reason, "reason"));
  absl::MutexLock lock(&mu_);
  return ClearEmergencyStopLocked(content_type, actor, reason, nullptr);
}

absl::Status Controller::ClearEmergencyStopLocked(
    absl::string_view content_type, absl::string_view actor,
    absl::string_view reason, const Approval* approval) {
  if (stops_.find(content_type) == stops_.end()) {
    return absl::NotFoundError(absl::StrCat("content type ",
                                            QuoteForError(content_type),
                                            " has no emergency stop"));
  }
  {
    ApprovalRequest held;
    held.set_action("clear_emergency_stop");
    held.set_requested_by(std::string(actor));
    held.set_reason(std::string(reason));
    RETURN_IF_ERROR(MaybeHoldLocked(approval, content_type,
                                    {config::v1::GUARDED_CLEAR_EMERGENCY_STOP},
                                    std::move(held)));
  }
  AuditEntry audit = MakeAudit(actor, "clear_emergency_stop", reason);
  audit.set_reason(absl::StrCat(content_type, ": ", reason));
  StampApproval(approval, &audit);
  absl::Status s = store_->ClearEmergencyStop(content_type, audit);
  if (!absl::IsNotFound(s)) NoteStoreResult(s);
  RETURN_IF_ERROR(s);
  stops_.erase(std::string(content_type));
  PublishLocked();
  return absl::OkStatus();
}

absl::StatusOr<RolloutStatus> Controller::GetRollout(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  Runtime* rt = FindLocked(id);
  if (rt == nullptr) {
    return absl::NotFoundError(absl::StrCat("rollout \"", id, "\" not found"));
  }
  RolloutStatus st;
  st.rollout = rt->record;
  st.telemetry = rt->tracker->Snapshot();
  st.stage_exposure_budget = rt->budget.load(std::memory_order_relaxed);
  return st;
}

absl::StatusOr<std::vector<Rollout>> Controller::ListRollouts() {
  absl::MutexLock lock(&mu_);
  std::vector<Rollout> out;
  for (const auto& rt : runtimes_) out.push_back(rt->record);
  return out;
}

absl::StatusOr<std::vector<Decision>> Controller::ListDecisions(
    absl::string_view rollout_id, uint64_t after_seq) {
  return store_->ListDecisions(rollout_id, after_seq);
}

absl::StatusOr<std::vector<AuditEntry>> Controller::ReadAudit(
    uint64_t after_seq, size_t limit) {
  return store_->ReadAudit(after_seq, limit);
}

absl::StatusOr<GateCheck> Controller::CheckGate(absl::string_view release_id,
                                                absl::string_view stage) {
  RETURN_IF_ERROR(ValidateId(release_id, "release_id"));
  absl::MutexLock lock(&mu_);
  Runtime* latest = nullptr;
  for (const auto& rt : runtimes_) {
    if (rt->record.release_id() == release_id) latest = rt.get();
  }
  if (latest == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no rollout of release \"", release_id, "\""));
  }
  const Rollout& r = latest->record;
  const Plan& plan = r.plan();
  int target = plan.stages_size() + 1;  // whole fleet = completed
  if (!stage.empty()) {
    target = -1;
    for (int i = 0; i < plan.stages_size(); ++i) {
      if (plan.stages(i).name() == stage) target = i;
    }
    if (stage == "late-track") target = plan.stages_size();
    if (target < 0) {
      return absl::NotFoundError(absl::StrCat(
          "stage: rollout \"", r.id(), "\" has no stage \"", stage, "\""));
    }
  }
  GateCheck check;
  check.rollout = r;
  if (r.state() == HALTED || r.state() == ABORTED) {
    check.status = GateStatus::kRejected;
    check.explanation =
        absl::StrCat("rollout ", r.id(), " is ", RolloutStateName(r.state()),
                     ": ", r.reason());
  } else if (r.state() == COMPLETED ||
             (r.state() != PENDING && static_cast<int>(r.stage()) >= target)) {
    check.status = GateStatus::kCleared;
    check.explanation = absl::StrCat(
        "release ", release_id, " is cleared for ",
        stage.empty() ? std::string("the whole fleet")
                      : absl::StrCat("stage ", stage),
        " (rollout ", r.id(), " is ", RolloutStateName(r.state()), ")");
  } else {
    check.status = GateStatus::kPending;
    check.explanation = absl::StrCat(
        "rollout ", r.id(), " is ", RolloutStateName(r.state()), " in stage ",
        StageName(plan, static_cast<int>(r.stage())),
        r.has_last_decision() ? absl::StrCat("; ", r.last_decision().summary())
                              : std::string());
  }
  return check;
}

}  // namespace ringfence
