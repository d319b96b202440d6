// The fleet simulator: drives the real Controller (assignment, pacing,
// telemetry, gate, store) with a FakeClock over an emulated fleet described by
// a Scenario (config/v1/scenario.proto), to measure how many hosts a bad
// update hurts and how often a good one is halted — and to rehearse a plan
// before a real rollout.
//
// One run:
//  1. The fleet is drawn from the scenario with the run's seed: host
//     attributes (segments, versions, platforms, tenants, regions, time
//     zones, labels), which hosts are chronic crashers or flappers, their
//     frailty, lag class and heartbeat phase. The rollout's id, and so its
//     bucketing salt, is "sim-<seed>": every seed is an independent rollout
//     with its own stage memberships, and within a heartbeat slot hosts poll
//     in an order that is random per seed.
//  2. The rollout phase, in fixed steps (scenario.step, default 10 s): hosts
//     whose heartbeat slot falls in the step poll Controller::Assign, load or
//     revert what they are told, and heartbeat; hazards (baseline crashes,
//     chronic crashers, the update's effects) are drawn per step; telemetry
//     reaches the controller after its delay (or never); the gate ticks
//     every step. It ends when the rollout is halted or aborted, when its
//     post-completion watch ends (plan.post_completion_watch: hosts keep
//     loading it and the gate keeps its halt rules; a halt then rolls it
//     back and the run counts as halted), or after scenario.max_duration
//     ("stalled", unless it completed). A completed run's end_s is its
//     completion.
//  3. The horizon (scenario.horizon, default 24 h after the end): harm keeps
//     being counted. Once the rollout has ended the controller's answers are
//     fixed (a completed release to every host, a halted one's baseline), so
//     this phase is simulated per affected host in continuous time instead
//     of in steps (O(hosts) once, not per step): each host's next
//     successful poll (online, not in an outage, ringfence up), its
//     offline spells, and the effect's hazard while it runs the release,
//     with the same rates and cycles as the steps. Completed: every host
//     loads the release at its next poll and is exposed to the effect for
//     the rest of the horizon. Halted: hosts revert at their next poll (a
//     boot-looping host at its next boot). Stalled: hosts keep what they run.
//  "Hurt" counts distinct hosts that ever failed because of the release
//  (crashed by it, boot-looped, hung, failed to load it, lost their
//  telemetry to it, or showed a vendor signal it caused), to the horizon.
//
// Deciders, and what each knows. All three run the same plan with the same
// controller, the same promotions and the same exposure path: the baselines
// run the controller with ControllerOptions.enforce_halts = false (the gate
// evaluates every rule, but a tripped rule does not halt) and replace only
// the halting decision with their own rule, which calls Controller::Abort.
// With the same seed, runs of different deciders are identical until one of
// them halts.
//  * kRingfence: the gate, from the telemetry it receives.
//  * kOracle: Wald's SPRT (accept/reject thresholds log(beta / (1 - alpha))
//    and log((1 - beta) / alpha)) of "no effect" against the true effect. It
//    knows the scenario's true model: the baseline hazard of every host
//    (frailty, segment, cycles, time zone), which hosts are chronic crashers
//    or flappers, the delivery delays' bounds and the loss rate, the
//    outages and restarts, and the effect's size, the hosts it affects and
//    its latency (delay, trigger). It sees the events ringfence receives,
//    when ringfence receives them, and uses an observation only once it is
//    complete: a host's data for an instant are used when every event of
//    that instant has been delivered or lost (its maximal delay), so no
//    event arriving early biases it. Components (their log-likelihood ratios
//    add):
//      - hazard multiplier: crash events of affected hosts running the
//        release past the latency, as a Poisson process against its known
//        baseline: LLR = k log RR - (RR - 1) * expected baseline crashes;
//      - vendor signals: the same for the signal's events;
//      - hangs: silence onsets (offline or hung) of the same hosts, noticed
//        one heartbeat interval plus the maximal delay after they happen;
//      - crash on apply, boot loop, apply failure, broken telemetry: each
//        exposed affected host is a Bernoulli trial decided by what its
//        load produced (a crash report, nothing at all, no `applied`),
//        against the chance of that by baseline and loss.
//    On an update that cannot hurt any host (no effect, an improvement, an
//    effect on hosts the fleet does not have) the oracle tests the
//    detection target instead: crash rate x options.oracle_target_rr on
//    every exposed host. Its false halts there are a real rate, at most
//    about alpha. Hosts in an outage or a flap, and instants when ringfence
//    is down, are left out of every component (their data arrive late).
//  * kThresholdRule: what rollout tools typically configure, from the
//    controller's aggregates: every `interval`, fail the measurement if
//    more than `max_fraction` of the exposed hosts are crashed or silent
//    (once `min_exposed` are exposed); abort after more than
//    `failure_limit` failed measurements.
//
// Thread safety: Simulate() is reentrant; runs share nothing.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ringfence/config/v1/scenario.pb.h"
#include "ringfence/model.h"

namespace ringfence {

using config::v1::Scenario;

enum class Decider { kRingfence, kOracle, kThresholdRule };
absl::string_view DeciderName(Decider d);

struct ThresholdRuleOptions {
  absl::Duration interval = absl::Minutes(1);
  double max_fraction = 0.05;
  int failure_limit = 2;
  uint64_t min_exposed = 5;
};

struct SimOptions {
  Decider decider = Decider::kRingfence;
  // The run's seed: fleet, phases, hazards and the rollout's salt.
  uint64_t seed = 1;
  // Record a per-minute timeline.
  bool timeline = false;
  ThresholdRuleOptions threshold;
  // The oracle's error rates; alpha <= 0 means the plan's alpha (that of
  // its first stage's policy), so the oracle and the gate share a budget.
  double oracle_alpha = 0;
  double oracle_beta = 0.01;
  // The relative risk the oracle tests on updates that cannot hurt anyone.
  double oracle_target_rr = 2;
  // Overrides scenario.horizon when >= 0.
  absl::Duration horizon = absl::Seconds(-1);
};

struct TimelinePoint {
  double t_s = 0;  // since the rollout started
  uint64_t exposed = 0;
  uint64_t hurt = 0;
  std::string state;
  std::string stage;
  std::string decision;
};

enum class SimOutcome { kCompleted, kHalted, kStalled };
absl::string_view SimOutcomeName(SimOutcome o);

struct SimRun {
  uint64_t seed = 0;
  Decider decider = Decider::kRingfence;
  SimOutcome outcome = SimOutcome::kStalled;
  bool halted = false;
  bool completed = false;
  // Ground truth: the update can hurt at least one host of this fleet (an
  // effect that fails hosts, on hosts that exist and can get it).
  bool harmful = false;
  // Halted although the update could hurt no host.
  bool false_halt = false;
  // Times in seconds. From the first exposure to the halt (-1: no halt or
  // no exposure); from the rollout's start to its end (halt, completion,
  // or max_duration for a stalled run).
  double time_to_halt_s = -1;
  double end_s = -1;
  // The stage the rollout was in at its end.
  std::string stage;
  // Hosts ever exposed (granted the release) by the end / by the halt
  // (0 if not halted).
  uint64_t exposed_at_end = 0;
  uint64_t exposed_at_halt = 0;
  // Distinct hosts hurt by the release by the end / by the halt / by the
  // end of the horizon.
  uint64_t hurt_at_end = 0;
  uint64_t hurt_at_halt = 0;
  uint64_t hurt_total = 0;
  // Hosts that ran the release at some point, horizon included.
  uint64_t exposed_total = 0;
  // Why it halted: the full reason, and a short category ("rule/signal"
  // for the gate, "oracle", "threshold_rule", "emergency_stop").
  std::string halt_reason;
  std::string halt_rule;
  // Ground truth, for checking the simulator itself: crashes drawn (all
  // causes), host-hours spent online (sampled), events lost to outages,
  // restarts performed.
  uint64_t crash_events = 0;
  double online_host_hours = 0;
  uint64_t outage_dropped_events = 0;
  int restarts = 0;
  // Hosts the rollout's tracker knew at the end.
  uint64_t tracked_hosts = 0;
  // Which hosts each stage selects (XOR of HostKey of its hosts), and the
  // first hosts granted the release (host index, in grant order): what
  // differs between independent seeds.
  std::vector<uint64_t> stage_fingerprints;
  std::vector<uint32_t> first_exposed;
  // The oracle's log-likelihood ratio at the end (oracle runs).
  double oracle_llr = 0;
  std::vector<TimelinePoint> timeline;
  double wall_seconds = 0;
};

// ValidateScenario
//
// INVALID_ARGUMENT naming the field, e.g. "effect.delay: must be >= 0".
absl::Status ValidateScenario(const Scenario& scenario);

// ValidateScenarioForPlan
//
// ValidateScenario plus the references to the plan: stage names of
// outages, restarts and the effect's trigger.
absl::Status ValidateScenarioForPlan(const Scenario& scenario,
                                     const Plan& plan);

// HasEffect
//
// Whether the scenario's update changes anything at all (an improvement
// does).
bool HasEffect(const Scenario& scenario);

// CanHurt
//
// Whether the effect fails hosts (before looking at which hosts exist):
// crash on apply, boot loop, hangs, apply failures, broken telemetry, or a
// multiplier > 1 of a hazard whose baseline is > 0. A run's `harmful` also
// needs an affected host that can get the release.
bool CanHurt(const Scenario& scenario);

// Simulate
//
// One run of `plan` over `scenario`.
absl::StatusOr<SimRun> Simulate(const Scenario& scenario, const Plan& plan,
                                const SimOptions& options);

// PlanWarnings
//
// Why `plan` may be unable to progress on the fleet `scenario` describes,
// one sentence each (empty if none): a stage that selects fewer hosts
// (expected, over seeds) than its min_exposed_hosts; a first stage whose
// initial pacing alone is expected to show a signal, by the fleet's
// baseline (crashes, chronic crashers, churn, flappers) over the stage's
// bake time, on at least as many hosts as the signal's circuit breaker.
// REQUIRES: both valid.
std::vector<std::string> PlanWarnings(const Scenario& scenario,
                                      const Plan& plan);

// A proportion with its two-sided 95 % Clopper-Pearson interval. rate is -1
// (and the interval [0, 1]) when n == 0.
struct Proportion {
  uint64_t k = 0;
  uint64_t n = 0;
  double rate = -1;
  double low = 0;
  double high = 1;
};
Proportion BinomialProportion(uint64_t k, uint64_t n);

struct SimSummary {
  uint64_t runs = 0;
  double completed_fraction = 0;
  double halted_fraction = 0;
  double stalled_fraction = 0;
  // Runs whose update could hurt a host.
  uint64_t harmful_runs = 0;
  // False halts among the runs whose update could hurt no host.
  Proportion false_halts;
  // Halts by category (SimRun::halt_rule).
  std::map<std::string, uint64_t> halt_reasons;
  // Hosts hurt by the end of the horizon, over all runs.
  double hurt_mean = 0;
  double hurt_p50 = 0;
  double hurt_p95 = 0;
  // Hosts hurt by the rollout's end, over all runs.
  double hurt_at_end_mean = 0;
  // Over halted runs (-1 if none).
  double hurt_at_halt_mean = -1;
  double exposed_at_halt_mean = -1;
  double exposed_at_halt_p50 = -1;
  double exposed_at_halt_p95 = -1;
  double time_to_halt_s_mean = -1;
  double time_to_halt_s_p50 = -1;
  double time_to_halt_s_p95 = -1;
  // Time from start to completion over the runs that did not halt, stalled
  // runs counted at the max duration (right-censored; *_censored says the
  // percentile is such a run, i.e. "at least"). -1 if every run halted.
  double completion_s_p50 = -1;
  double completion_s_p95 = -1;
  bool completion_p50_censored = false;
  bool completion_p95_censored = false;
};

// Summarize
//
// Aggregates runs. Percentiles are nearest-rank.
SimSummary Summarize(const std::vector<SimRun>& runs);

// SummaryJson / RunJson
//
// JSON objects with the fields above (snake_case).
std::string SummaryJson(const SimSummary& s);
std::string RunJson(const SimRun& r);

// RehearsalScenario
//
// The presets of `simulate --rehearse`: "boot-loop", "crash-on-apply:<p>",
// "crash-rate:<RR>", applied to `base` (fleet and behaviour kept).
absl::StatusOr<Scenario> RehearsalScenario(const Scenario& base,
                                           absl::string_view preset);

}  // namespace ringfence
