// The fleet simulator: drives the real Controller (assignment, pacing,
// telemetry, gate, store) with a FakeClock over an emulated fleet described by
// a Scenario (config/v1/scenario.proto), to measure how many hosts a bad
// update hurts before the halt and how often a good one is halted — and to
// rehearse a plan before a real rollout.
//
// Time advances in fixed steps (scenario.step, default 10 s). In each step the
// hosts whose heartbeat phase falls in it poll Controller::Assign, report
// `applying`/`applied` when their assignment changes, and heartbeat; crashes
// are drawn per step from the hazards (baseline x the update's multiplier on
// affected hosts); events reach the controller after the scenario's delay,
// or never (loss, outages, boot loops). The controller's gate ticks every
// step.
//
// Deciders: kRingfence runs ringfence's own gate. kOracle and kThresholdRule
// run the same plan (stages, pacing, bake times) with the gate's halting rules
// disabled, and abort the rollout when their own rule fires:
//   * oracle: Wald's SPRT (stats.h PoissonWaldSprt) on the treatment arm's
//     bad events (hosts newly `crash`ed or `silent`) per host-hour, knowing
//     the true baseline rate and the true effect — the best any test can do;
//   * threshold rule: what rollout tools typically configure — every
//     `interval`, fail the measurement if more than `max_fraction` of the
//     exposed hosts are crashed or silent (once `min_exposed` are exposed);
//     abort after more than `failure_limit` failed measurements.
//
// Thread safety: Simulate() is reentrant; runs share nothing.
#pragma once

#include <cstdint>
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
  uint64_t seed = 1;
  // Record a per-minute timeline.
  bool timeline = false;
  ThresholdRuleOptions threshold;
  double oracle_alpha = 0.01;
  double oracle_beta = 0.01;
};

struct TimelinePoint {
  double t_s = 0;  // since the rollout started
  uint64_t exposed = 0;
  uint64_t hurt = 0;
  std::string state;
  std::string stage;
  std::string decision;
};

struct SimRun {
  uint64_t seed = 0;
  bool halted = false;
  // Halted although the update had no effect.
  bool false_halt = false;
  bool completed = false;
  // From the first exposure; -1 if it never happened.
  double time_to_halt_s = -1;
  double time_to_completion_s = -1;
  uint64_t exposed_at_halt = 0;
  // Hosts hurt by the update's effect (crashed by it, or boot-looping).
  uint64_t hurt_at_halt = 0;
  uint64_t hurt_total = 0;
  uint64_t exposed_total = 0;
  std::string halt_reason;
  // Ground truth, for checking the simulator itself: crashes drawn (all
  // causes), host-hours spent online, events lost to outages.
  uint64_t crash_events = 0;
  double online_host_hours = 0;
  uint64_t outage_dropped_events = 0;
  // Hosts the rollout's tracker knew at the end.
  uint64_t tracked_hosts = 0;
  std::vector<TimelinePoint> timeline;
  double wall_seconds = 0;
};

// ValidateScenario
//
// INVALID_ARGUMENT naming the field.
absl::Status ValidateScenario(const Scenario& scenario);

// HasEffect
//
// Whether the scenario's update changes anything (a halt of one without
// effect is a false halt).
bool HasEffect(const Scenario& scenario);

// Simulate
//
// One run of `plan` over `scenario`.
absl::StatusOr<SimRun> Simulate(const Scenario& scenario, const Plan& plan,
                                const SimOptions& options);

struct SimSummary {
  uint64_t runs = 0;
  double halted_fraction = 0;
  double false_halt_rate = 0;
  double hosts_hurt_mean = 0;
  double hosts_hurt_at_halt_mean = 0;
  double hosts_exposed_at_halt_mean = 0;
  double time_to_halt_s_mean = -1;
  double time_to_halt_s_p50 = -1;
  double time_to_halt_s_p95 = -1;
  double time_to_completion_s_mean = -1;
};

// Summarize
//
// Aggregates runs; the halt-conditional means are over halted runs only.
SimSummary Summarize(const std::vector<SimRun>& runs);

// SummaryJson / RunJson
//
// JSON objects with the fields above (snake_case), for --json output.
std::string SummaryJson(const SimSummary& s);
std::string RunJson(const SimRun& r);

// RehearsalScenario
//
// The presets of `simulate --rehearse`: "boot-loop", "crash-on-apply:<p>",
// "crash-rate:<RR>", applied to `base` (fleet and behaviour kept).
absl::StatusOr<Scenario> RehearsalScenario(const Scenario& base,
                                           absl::string_view preset);

}  // namespace ringfence
