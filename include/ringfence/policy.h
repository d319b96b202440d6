// Gate policies: the built-in signal rules, how a plan's and a stage's
// policies layer over them, and the checks that keep a plan from switching
// safety rules off by accident.
//
// Layering (config.proto GatePolicy): the built-in defaults, then the plan's
// `policy`, then the stage's `policy`. A field that is set in a layer
// overrides the layer below; signal rules merge by signal name, field by
// field. So a plan that lists one vendor signal keeps every built-in rule,
// and a stage that sets `alpha` keeps the plan's timeouts. A built-in signal
// is switched off only by `disabled: true` with a `disabled_reason`, which
// the rollout's start records in the audit log; `crash` and `silent` cannot
// be switched off, and a plan that leaves either without a halting rule in
// any stage is refused.
//
// Thread safety: all functions are pure.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "ringfence/model.h"

namespace ringfence {

// BuiltinSignalRules
//
// The bottom layer of every policy, one rule per built-in signal:
//   crash           breaker 3 hosts; compared with control, margin 0.1
//   unclean_reboot  breaker 3 hosts; ceiling 5 %
//   silent          breaker 3 hosts; compared with control, margin 0.2
//   apply_stuck     breaker 3 hosts; ceiling 5 %
//   local_fallback  breaker 3 hosts; ceiling 5 %
// Every breaker and ceiling is control-aware (gate.h): it halts on a count
// the control arm's hazard over the same hours cannot explain, and on any
// count of at least the breaker when there is no control to compare with.
std::vector<SignalRule> BuiltinSignalRules();

// IsBuiltinSignal
bool IsBuiltinSignal(absl::string_view signal);

// EffectivePolicy
//
// The policy of `stage` of `plan` (built-in defaults < plan.policy <
// stages[stage].policy; the plan's layer only for the late-track stage
// `plan.stages_size()` or any index outside the plan). Every scalar and
// every rule field is set; disabled signals are left out.
GatePolicy EffectivePolicy(const Plan& plan, int stage);

// EffectivePolicies
//
// EffectivePolicy of every stage, the late track last (stages_size() + 1
// entries), for callers that evaluate many stages often.
std::vector<GatePolicy> EffectivePolicies(const Plan& plan);

// EffectivePacing
//
// The pacing of `stage` with defaults filled in.
Pacing EffectivePacing(const Plan& plan, int stage);

// A built-in signal switched off in one stage.
struct DisabledSignal {
  int stage = 0;  // == plan.stages_size() for the late track
  std::string signal;
  std::string reason;
};

// DisabledSignals
//
// Every (stage, signal) whose rules a layer switched off, with the reason.
std::vector<DisabledSignal> DisabledSignals(const Plan& plan);

// ValidateGatePolicy
//
// Checks one layer: ranges, signal names ([a-z0-9_]{1,64}), duplicates,
// `disabled` with its reason, naming fields under `path` (e.g.
// "stages[1].policy"). The effective policies are checked by ValidatePlan.
absl::Status ValidateGatePolicy(const GatePolicy& policy,
                                absl::string_view path);

// ValidateEffectivePolicies
//
// The rules every plan must keep (called by ValidatePlan): in every stage,
// `crash` and `silent` have a halting rule (breaker, ceiling or control
// comparison); any other signal either has one or is disabled on record;
// at most kMaxSignals signals in all.
absl::Status ValidateEffectivePolicies(const Plan& plan);

// ExplainPlan
//
// A person-readable listing of every stage's effective policy: scalars and
// each signal's rules, with the layer each value comes from ("default",
// "plan", "stage"), and the disabled signals with their reasons.
// REQUIRES: ValidatePlan(plan).ok().
std::string ExplainPlan(const Plan& plan);

}  // namespace ringfence
