#include "ringfence/controller.h"

#include <algorithm>
#include <cmath>

#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
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

struct Controller::Runtime {
  explicit Runtime(std::string rollout_id) : id(std::move(rollout_id)) {}
  // A copy of record.id() that never changes, for lock-free readers.
  const std::string id;
  Rollout record;
  const Release* release = nullptr;
  const Release* baseline = nullptr;
  std::unique_ptr<const AudienceIndex> index;
  std::unique_ptr<const CompiledTargeting> targeting;
  std::unique_ptr<RolloutTracker> tracker;
  // EffectivePolicies(record.plan()): per stage, the late track last.
  std::vector<GatePolicy> policies;
  std::atomic<uint64_t> budget{0};
  uint64_t next_decision_seq = 1;
  std::string last_recorded_key;  // verdict + rule of the last stored decision
  absl::Time window_start = absl::InfinitePast();
  absl::Time last_sweep = absl::InfinitePast();
  absl::Time last_checkpoint = absl::InfinitePast();
  uint64_t window_base = 0;
};

// What Assign() reads for one content type.
struct Controller::ContentView {
  Runtime* rt = nullptr;  // the latest rollout, or nullptr
  ContentState cs;        // what the assignment rules read (assign_rules.h)
};

struct Controller::View {
  absl::flat_hash_map<std::string, ContentView> content;
};

namespace {

// Batches up to this many events hash their hosts into a stack array.
constexpr size_t kInlineBatch = 1024;

bool IsActive(RolloutState s) {
  return s == PENDING || s == RUNNING || s == PAUSED;
}

// A COMPLETED rollout still under its post-completion watch. A watch that
// ended (ran out, or was ended by a later rollout) was committed with
// watch_until <= updated_at, so it stays ended even if the clock steps back.
bool Watching(const Rollout& r, absl::Time now) {
  if (r.state() != COMPLETED || !r.has_watch_until()) return false;
  const absl::Time until = FromProto(r.watch_until());
  return until > FromProto(r.updated_at()) && until > now;
}

// Whether the gate still runs for `r`: active, or completed and watched.
bool Gated(const Rollout& r, absl::Time now) {
  return IsActive(r.state()) || Watching(r, now);
}

std::vector<std::string> SignalsOf(absl::Span<const GatePolicy> policies) {
  std::vector<std::string> out;
  for (const GatePolicy& policy : policies) {
    for (const SignalRule& r : policy.signals()) {
      if (std::find(out.begin(), out.end(), r.signal()) == out.end()) {
        out.push_back(r.signal());
      }
    }
  }
  return out;
}

absl::Duration PostCompletionWatch(const Plan& plan) {
  const absl::Duration d = FromProto(plan.post_completion_watch());
  return d == absl::ZeroDuration() ? absl::Hours(1) : d;
}

}  // namespace

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

// ---- Gate ---------------------------------------------------------------

absl::StatusOr<Decision> Controller::Evaluate(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  Runtime* rt = FindLocked(id);
  if (rt == nullptr) {
    return absl::NotFoundError(absl::StrCat("rollout \"", id, "\" not found"));
  }
  return EvaluateLocked(rt, EvaluateMode::kFull);
}

absl::Status Controller::Tick() {
  // Batches counted by now were applied before the checkpoints below read
  // the trackers: once those commit, the batches survive a restart.
  const uint64_t covered = ingested_batches_.load(std::memory_order_acquire);
  bool waiting = false;
  {
    absl::MutexLock lock(&acks_mu_);
    waiting = !acks_.empty();
  }
  absl::Status checkpoints;
  absl::Status first = TickLocked(/*force_checkpoints=*/waiting, &checkpoints);
  if (waiting) SettleAcks(covered, checkpoints);
  return first;
}

void Controller::SettleAcks(uint64_t covered, const absl::Status& checkpoints) {
  std::vector<std::function<void(absl::Status)>> ready;
  {
    absl::MutexLock lock(&acks_mu_);
    if (checkpoints.ok())
      durable_batches_ = std::max(durable_batches_, covered);
    auto waiting =
        std::partition(acks_.begin(), acks_.end(),
                       [covered](const auto& a) { return a.first > covered; });
    for (auto it = waiting; it != acks_.end(); ++it) {
      ready.push_back(std::move(it->second));
    }
    acks_.erase(waiting, acks_.end());
  }
  const absl::Status result =
      checkpoints.ok() ? absl::OkStatus()
                       : absl::UnavailableError(absl::StrCat(
                             "applied but not checkpointed (",
                             checkpoints.message(), "); re-send the batch"));
  for (auto& done : ready) done(result);
}

absl::Status Controller::TickLocked(bool force_checkpoints,
                                    absl::Status* checkpoints) {
  absl::MutexLock lock(&mu_);
  absl::Status first;
  if (!store_healthy_.load(std::memory_order_acquire)) {
    // Find out whether writes work again, even with nothing to write.
    absl::Status s = store_->Probe();
    if (!absl::IsUnimplemented(s)) {
      NoteStoreResult(s);
      first = s;
    }
  }
  const absl::Time now = clock_->Now();
  for (size_t i = 0; i < runtimes_.size(); ++i) {
    Runtime* rt = runtimes_[i].get();
    const Rollout& r = rt->record;
    if (r.state() == COMPLETED && r.has_watch_until() &&
        FromProto(r.watch_until()) <= now &&
        FromProto(r.watch_until()) > FromProto(r.updated_at())) {
      // (CommitLocked sets updated_at to now >= watch_until: ended.)
      // The watch ran its course: record it (and publish, so assignments of
      // the completed release stop recording exposures).
      Rollout ended = r;
      absl::Status s = CommitLocked(
          rt, std::move(ended), "gate", "watch_end",
          absl::StrCat("post-completion watch of ",
                       absl::FormatDuration(PostCompletionWatch(r.plan())),
                       " ended with no halt rule tripped"),
          nullptr);
      if (!s.ok() && first.ok()) first = s;
      continue;
    }
    if (!Gated(r, now)) continue;
    absl::StatusOr<Decision> d = EvaluateLocked(rt, EvaluateMode::kFull);
    if (!d.ok() && first.ok()) first = d.status();
    if (!Gated(rt->record, now)) continue;  // halted: nothing to keep
    absl::Status s = CheckpointLocked(rt, force_checkpoints);
    if (!s.ok() && first.ok()) first = s;
    if (!s.ok() && checkpoints->ok()) *checkpoints = s;
  }
  return first;
}

absl::Status Controller::CheckpointLocked(Runtime* rt, bool force) {
  const absl::Time now = clock_->Now();
  if (!force && now - rt->last_checkpoint < options_.checkpoint_interval) {
    return absl::OkStatus();
  }
  std::vector<HostEvidence> evidence;
  const config::v1::TrackerCheckpoint cp = rt->tracker->Checkpoint(&evidence);
  absl::Status s =
      store_->PutCheckpoint(rt->id, cp.SerializeAsString(), evidence);
  NoteStoreResult(s);
  if (s.ok()) {
    rt->last_checkpoint = now;
  } else {
    rt->tracker->RequeueEvidence(evidence);
  }
  return s;
}

absl::StatusOr<Decision> Controller::EvaluateLocked(Runtime* rt,
                                                    EvaluateMode mode) {
  const absl::Time now = clock_->Now();
  if (!Gated(rt->record, now)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rollout \"", rt->record.id(), "\" is ",
        RolloutStateName(rt->record.state()), "; the gate no longer runs"));
  }
  // After COMPLETED (the post-completion watch) only the halt rules act.
  if (rt->record.state() == COMPLETED) mode = EvaluateMode::kHaltsOnly;
  const Plan& plan = rt->record.plan();
  const int stage = static_cast<int>(rt->record.stage());
  const GatePolicy& policy =
      rt->policies[std::min<size_t>(stage, rt->policies.size() - 1)];
  TrackerSnapshot snap = rt->tracker->Snapshot();
  const bool fresh =
      snap.last_ingest != absl::InfinitePast() &&
      now - snap.last_ingest <= FromProto(policy.max_staleness());
  // Silence is only meaningful while telemetry flows. A sweep scans every
  // host, so it runs at most every silence_timeout / 60 (1..10 s): detection
  // is late by at most that (a decision that acts sweeps first, below).
  const absl::Duration silence_timeout = FromProto(policy.silence_timeout());
  const absl::Duration sweep_every =
      std::clamp(silence_timeout / 60, absl::Seconds(1), absl::Seconds(10));
  auto sweep = [&] {
    rt->tracker->Sweep(silence_timeout, FromProto(policy.apply_timeout()));
    rt->last_sweep = now;
    snap = rt->tracker->Snapshot();
  };
  if (fresh && (now - rt->last_sweep >= sweep_every ||
                mode == EvaluateMode::kHaltsOnly)) {
    sweep();
  }
  GateInput in;
  in.plan = &plan;
  in.stage = stage;
  in.state = rt->record.state();
  in.stage_started_at = FromProto(rt->record.stage_started_at());
  in.now = now;
  in.telemetry = &snap;
  in.policies = &rt->policies;
  in.enforce_halts = options_.enforce_halts;
  Decision d = EvaluateGate(in);
  if (d.verdict() == PROMOTE && fresh && rt->last_sweep != now) {
    // Never promote on a stale sweep: derive silence now and decide again.
    sweep();
    d = EvaluateGate(in);
  }
  d.set_rollout_id(rt->record.id());
  *d.mutable_at() = ToProtoTime(now);
  if (mode == EvaluateMode::kHaltsOnly && d.verdict() != HALT) return d;

  // Decisions are recorded when their verdict or deciding rule changes;
  // decisions that change state are committed together with the transition
  // (so a crash can neither lose one nor record one that did not act).
  const std::string key = absl::StrCat(
      VerdictName(d.verdict()), "/",
      d.evidence_size() > 0 ? d.evidence(0).rule() : "", "/", stage);
  const bool acts = d.verdict() == HALT ||
                    (d.verdict() == PROMOTE && rt->record.state() == RUNNING);
  if (acts || key != rt->last_recorded_key) d.set_seq(rt->next_decision_seq);
  if (!acts && key != rt->last_recorded_key) {
    absl::Status s = store_->AppendDecision(d);
    NoteStoreResult(s);
    RETURN_IF_ERROR(s);
    ++rt->next_decision_seq;
    rt->last_recorded_key = key;
  }

  Rollout next = rt->record;
  *next.mutable_last_decision() = d;
  if (d.verdict() == HALT) {
    const bool after_completion = rt->record.state() == COMPLETED;
    const std::string reason =
        after_completion ? absl::StrCat("post-completion watch: ", d.summary())
                         : d.summary();
    next.set_state(HALTED);
    next.set_reason(reason);
    RETURN_IF_ERROR(
        CommitLocked(rt, std::move(next), "gate", "halt", reason, &d));
    ++rt->next_decision_seq;
    rt->last_recorded_key = key;
  } else if (d.verdict() == PROMOTE && rt->record.state() == RUNNING) {
    if (stage >= plan.stages_size()) {
      next.set_state(COMPLETED);
      *next.mutable_watch_until() =
          ToProtoTime(now + PostCompletionWatch(plan));
      RETURN_IF_ERROR(CommitLocked(rt, std::move(next), "gate", "complete",
                                   d.summary(), &d));
    } else {
      next.set_stage(stage + 1);
      *next.mutable_stage_started_at() = ToProtoTime(now);
      RETURN_IF_ERROR(CommitLocked(rt, std::move(next), "gate", "gate_promote",
                                   d.summary(), &d));
    }
    ++rt->next_decision_seq;
    rt->last_recorded_key = key;
  } else {
    // HOLD: no transition; keep the latest decision in memory only.
    *rt->record.mutable_last_decision() = d;
    UpdateBudgetLocked(rt);
  }
  return d;
}

// ---- Fleet --------------------------------------------------------------

Assignment Controller::Assign(const HostInfo& host,
                              absl::string_view content_type) {
  const View* view = view_.load(std::memory_order_acquire);
  if (view == nullptr) return Assignment();
  auto it = view->content.find(content_type);
  if (it == view->content.end()) return Assignment();
  const ContentState& cs = it->second.cs;
  const AssignRule rule = ApplyAssignRules(cs, tenants_, host);
  Runtime* rt = it->second.rt;
  if (!rule.needs_exposure) {
    // Its telemetry counts in the control arm from now on (telemetry.h,
    // "The population"); TryReserve admits the hosts it refuses.
    if (rule.of_population) rt->tracker->Admit(HostKey(host.host_id));
    return rule.answer;
  }
  const uint64_t key = HostKey(host.host_id);
  const bool store_ok = store_healthy_.load(std::memory_order_acquire);
  if (rule.frozen || !store_ok) {
    // Frozen: only hosts that already have the release keep it.
    if (rt->tracker->Admit(key)) {
      Assignment a = ExposedAnswer(cs, rule);
      a.reason = cs.state == COMPLETED ? AssignReason::kCompleted
                                       : AssignReason::kExposed;
      return a;
    }
    return NotExposedAnswer(
        cs, rule,
        store_ok ? AssignReason::kPaused : AssignReason::kStoreUnavailable);
  }
  const uint64_t budget = rule.paced
                              ? rt->budget.load(std::memory_order_acquire)
                              : RolloutTracker::kUnpaced;
  switch (rt->tracker->TryReserve(key, cs.stage, budget,
                                  host.telemetry_pending > 0)) {
    case RolloutTracker::Grant::kNoBudget:
      return NotExposedAnswer(cs, rule, AssignReason::kWaitingForPacing);
    case RolloutTracker::Grant::kNotWatched:
      return NotExposedAnswer(cs, rule, AssignReason::kNotWatched);
    case RolloutTracker::Grant::kAlreadyExposed:
      break;
    case RolloutTracker::Grant::kReserved: {
      Exposure e;
      e.host_id = host.host_id;
      e.stage = static_cast<uint32_t>(cs.stage);
      e.at = clock_->Now();
      e.granted = rule.paced;
      absl::Status s = store_->RecordExposures(rt->id, {e});
      if (!s.ok()) {
        NoteStoreResult(s);
        if (rule.paced) rt->tracker->CancelReserved(cs.stage);
        return NotExposedAnswer(cs, rule, AssignReason::kStoreUnavailable);
      }
      rt->tracker->CommitReserved(key, cs.stage, rule.paced);
      // A halt, abort or emergency stop published meanwhile wins: the
      // exposure is on record, but the host is not told the release.
      const View* latest = view_.load(std::memory_order_acquire);
      if (latest != view) {
        auto lt = latest->content.find(content_type);
        if (lt != latest->content.end()) {
          const ContentState& now = lt->second.cs;
          if (now.emergency_stop || lt->second.rt != rt ||
              now.state == HALTED || now.state == ABORTED) {
            Assignment a = rule.answer;
            a.release = now.baseline;
            a.unload = a.release == nullptr;
            a.reason = now.emergency_stop ? AssignReason::kEmergencyStop
                                          : AssignReason::kRolledBack;
            return a;
          }
        }
      }
      break;
    }
  }
  return ExposedAnswer(cs, rule);
}

absl::Status Controller::Ingest(absl::Span<const TelemetryEvent> events) {
  if (events.size() > options_.max_batch_events) {
    return ValidateTelemetryBatch(events, options_.max_batch_events);
  }
  std::vector<TelemetryEventView> views;
  views.reserve(events.size());
  for (const TelemetryEvent& e : events) views.push_back(ViewOf(e));
  return Ingest(views);
}

absl::Status Controller::Ingest(absl::Span<const TelemetryEventView> events) {
  RETURN_IF_ERROR(ValidateTelemetryBatch(events, options_.max_batch_events));
  std::vector<Runtime*> active;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    for (const auto& rt : runtimes_) {
      if (Gated(rt->record, now)) active.push_back(rt.get());
    }
  }
  if (active.empty()) return absl::OkStatus();
  // Counted once applied (AfterCheckpoint): a Tick that reads the count
  // checkpoints after every batch it covers was applied.
  struct CountWhenApplied {
    std::atomic<uint64_t>* n;
    ~CountWhenApplied() { n->fetch_add(1, std::memory_order_acq_rel); }
  } count{&ingested_batches_};
  // Hashed once for every rollout.
  absl::InlinedVector<uint64_t, kInlineBatch> keys(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    keys[i] = HostKey(events[i].host_id);
  }
  absl::Status result;
  for (Runtime* rt : active) {
    std::vector<Exposure> exposed;
    rt->tracker->IngestKeyed(events, keys, &exposed);
    if (exposed.empty()) continue;
    // Hosts that report running the release are exposed whether or not we
    // granted it: record who got what, for rollback and restarts.
    absl::Status s = store_->RecordExposures(rt->id, exposed);
    NoteStoreResult(s);
    if (!s.ok() && result.ok()) result = s;
  }
  return result;
}

}  // namespace ringfence
