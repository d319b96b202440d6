// The gate: policy + telemetry aggregates -> HOLD / PROMOTE / HALT, with the
// evidence a person (and an auditor) can check.
//
// Rules, in the order they are checked:
//  1. Circuit breaker: a stage's cohort has >= max_affected_hosts distinct
//     hosts showing a signal (hosts that showed it before their exposure do
//     not count) that the control arm cannot explain: the count's e-value
//     (stats.h PoissonMixtureLogE) against the control's hazard reaches
//     1000 — the larger of the expected count over the same hours (the
//     Nelson-Aalen sum of the cohort, telemetry.h) and over the rollout (the
//     control's rate times the cohort's host-hours), each at its lower 99 %
//     bound, times 1 + margin. An e-value stays valid under the gate's
//     continuous looks. With no control event to go by, any count at the
//     breaker trips. Every cohort stays under its own stage's rules after
//     promotion, so latent failures of earlier stages still halt.
//  2. Ceiling: affected / at-risk hosts of a cohort exceeds
//     max_affected_fraction once ceiling_min_exposed_hosts are at risk,
//     with the same control guard.
//  3. Comparison with control: the signal's anytime-valid sequential test
//     (stats.h) rejected "treatment rate <= (1 + margin) * control rate" over
//     the whole rollout.
//  4. Freshness: no telemetry yet, or none for max_staleness => HOLD; never
//     PROMOTE on stale data; after a restart or a gap, no promotion before a
//     silence timeout of telemetry has been watched.
//  5. Judged: every signal of the stage has a breaker, a ceiling in effect,
//     or a control arm to be compared with; else HOLD ("not_judged"): a
//     comparison that cannot be made never reads as "no problem".
//  6. Promotion: bake time elapsed in the stage, at least min_exposed_hosts
//     hosts of the stage's cohort up on the release and healthy (and
//     min_exposed_host_hours), nothing tripped,
//     and, if the stage sets promote_max_relative_risk, every compared
//     signal's relative risk bounded below it (RelativeRiskUpperBound,
//     stats.h).
// HALT rules run on the evidence that has arrived even while telemetry is
// stale (evidence received is real); the controller suspends only the
// derivation of `silent` while telemetry is stale, since silence on stale
// data is an artifact of the outage.
//
// Thread safety: EvaluateGate is a pure function.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "ringfence/model.h"
#include "ringfence/stats.h"
#include "ringfence/telemetry.h"

namespace ringfence {

// GateInput
struct GateInput {
  const Plan* plan = nullptr;
  // Current stage; == plan->stages_size() for the late-track stage.
  int stage = 0;
  RolloutState state = config::v1::RUNNING;
  absl::Time stage_started_at;
  absl::Time now;
  const TrackerSnapshot* telemetry = nullptr;
  // EffectivePolicies(*plan) (policy.h), if the caller keeps them (the
  // controller does); computed per call otherwise.
  const std::vector<GatePolicy>* policies = nullptr;
  // False = shadow mode: a tripped halt rule does not HALT; the decision is
  // taken as if none had tripped (the simulator's baselines use it to follow
  // ringfence's exposure path until their own rule halts). Never false in
  // production.
  bool enforce_halts = true;
};

// EvaluateGate
//
// Returns the decision (seq, rollout_id and `at` are left for the caller).
Decision EvaluateGate(const GateInput& input);

// StageBakeTime
//
// How long `stage` must bake before promotion, including the late track's
// extra bake on the last regular stage.
absl::Duration StageBakeTime(const Plan& plan, int stage);

// StageName
//
// The stage's name, or "late-track" for the late-track stage.
std::string StageName(const Plan& plan, int stage);

}  // namespace ringfence
