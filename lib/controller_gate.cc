// Controller: the gate's side (ticks, evaluation, transitions it decides,
// checkpoints of the telemetry evidence).
#include <algorithm>
#include <cmath>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "controller_internal.h"
#include "ringfence/error_text.h"
#include "ringfence/gate.h"
#include "ringfence/hash.h"
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
using controller_internal::PostCompletionWatch;

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

}  // namespace ringfence
