#include "ringfence/gate.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ringfence/policy.h"

namespace ringfence {
namespace {

std::string HumanDuration(absl::Duration d) {
  if (d < absl::Seconds(1)) return "0s";
  return absl::FormatDuration(absl::Trunc(d, absl::Seconds(1)));
}

Evidence MakeEvidence(absl::string_view rule, absl::string_view signal,
                      uint64_t affected, uint64_t exposed, double statistic,
                      double threshold, std::string explanation) {
  Evidence e;
  e.set_rule(std::string(rule));
  e.set_signal(std::string(signal));
  e.set_affected_hosts(affected);
  e.set_exposed_hosts(exposed);
  e.set_statistic(statistic);
  e.set_threshold(threshold);
  e.set_explanation(std::move(explanation));
  return e;
}

int FindSignal(const TrackerSnapshot& t, absl::string_view signal) {
  for (size_t i = 0; i < t.signals.size(); ++i) {
    if (t.signals[i] == signal) return static_cast<int>(i);
  }
  return -1;
}

// P(X >= k) for X ~ Poisson(mu), summed in log space from k upwards.
double PoissonUpperTail(uint64_t k, double mu) {
  if (k == 0) return 1;
  if (mu <= 0) return 0;
  if (static_cast<double>(k) <= mu) return 1;  // >= ~0.5
  double log_term = k * std::log(mu) - mu - std::lgamma(k + 1.0);
  double sum = 0;
  for (uint64_t x = k;; ++x) {
    const double term = std::exp(log_term);
    sum += term;
    if (term < sum * 1e-12 || x > k + 100000) break;
    log_term += std::log(mu) - std::log(static_cast<double>(x + 1));
  }
  return std::min(1.0, sum);
}

// The lower 99 % confidence bound of a Poisson mean given `k` observed
// events (0 for k = 0): the mean at which P(X >= k) = 1 %, by bisection.
double PoissonLower99(uint64_t k) {
  if (k == 0) return 0;
  double lo = 0, hi = static_cast<double>(k);
  for (int i = 0; i < 60; ++i) {
    const double mid = (lo + hi) / 2;
    (PoissonUpperTail(k, mid) < 0.01 ? lo : hi) = mid;
  }
  return lo;
}

// The control guard of breakers and ceilings. A cohort's count trips a
// rule only if it is evidence, at level kGuardAlpha, against what the control
// arm shows of the signal's hazard, times 1 + margin: the Poisson mixture
// e-value of the count against that expectation (PoissonMixtureLogE, stats.h)
// reaches 1 / kGuardAlpha. The gate looks at every cohort and signal every
// few seconds for hours, so the guard must be a test that stays valid under
// continuous monitoring: a per-look tail probability (p <= 1e-3) crosses by
// chance on a good update often enough to be a false-halt source of its own
// (the e-value needs about one event more on a small expectation, and does
// not trip on a modest excess over a large one). The expected count is the
// larger of two estimates, each taken low where the control's data are thin
// (a comparison that cannot be made never reads as "no problem"):
//  * over the same hours: the Nelson-Aalen expected count the tracker keeps
//    per cohort (telemetry.h), at its lower 99 % bound (log-normal,
//    z = 2.326). It follows a network outage or a load spike as it happens
//    to both arms.
//  * over the rollout: the control's affected hosts per host-hour times the
//    cohort's host-hours at risk; the rate at its lower 99 % bound while the
//    control has fewer than kTrustedEvents affected hosts, as measured from
//    then on. It knows the fleet's base rate once the control arm has
//    drained (the last stages).
// A network outage silences both arms and a chronic base rate crashes both,
// so neither trips; a release that kills its own hosts does. With no
// control event to go by, any count at the breaker trips.
//
// Signals only exposed hosts can show are compared with the control's
// silence instead (`apply_stuck`: a healthy host that never comes up on the
// release is one that went dark), or not at all (`local_fallback`: a host's
// own boot guard gave up on the release).
constexpr double kGuardAlpha = 1e-3;
constexpr double kGuardZ = 2.326;
constexpr uint64_t kTrustedEvents = 10;

struct Guard {
  double expected = 0;  // under the control's hazard, times 1 + margin
  // The count's e-value against it (log); +inf when nothing can explain it
  // (no control signal to go by).
  double log_e = std::numeric_limits<double>::infinity();
  bool explained() const { return log_e < std::log(1 / kGuardAlpha); }
};

Guard ControlGuard(const TrackerSnapshot& t, const CohortCounts& c,
                   absl::string_view signal, int idx, double margin,
                   uint64_t affected) {
  Guard g;
  if (signal == kSignalLocalFallback) return g;
  if (signal == kSignalApplyStuck) idx = FindSignal(t, kSignalSilent);
  if (idx < 0) return g;
  double e = 0;
  const double na = c.control_expected[idx];
  if (na > 0) {
    const double sd = std::sqrt(std::max(0.0, c.control_expected_var[idx]));
    e = na * std::exp(-kGuardZ * sd / na);
  }
  if (idx < static_cast<int>(t.signal_counts.size()) && c.exposed > 0 &&
      t.control_host_hours > 0) {
    const uint64_t k = t.signal_counts[idx].control_affected;
    const double events =
        k >= kTrustedEvents ? static_cast<double>(k) : PoissonLower99(k);
    const double at_risk_hours =
        c.host_hours *
        static_cast<double>(c.exposed -
                            std::min(c.exposed, c.pre_affected[idx])) /
        static_cast<double>(c.exposed);
    e = std::max(e, events / t.control_host_hours * at_risk_hours);
  }
  g.expected = (1 + margin) * e;
  g.log_e = PoissonMixtureLogE(affected, g.expected);
  return g;
}

std::string GuardSentence(const Guard& g) {
  if (g.expected == 0) return "nothing in the control arm explains them";
  return absl::StrFormat(
      "the control arm's hazard explains at most %.2g of them (e-value %.3g, "
      "trips at %.3g)",
      g.expected, std::exp(std::min(g.log_e, 700.0)), 1 / kGuardAlpha);
}

}  // namespace

absl::Duration StageBakeTime(const Plan& plan, int stage) {
  if (stage >= plan.stages_size()) {
    return FromProto(plan.late_track().bake_time());
  }
  absl::Duration bake = FromProto(plan.stages(stage).bake_time());
  if (stage == plan.stages_size() - 1) {
    bake += FromProto(plan.late_track().extra_bake());
  }
  return bake;
}

std::string StageName(const Plan& plan, int stage) {
  if (stage >= 0 && stage < plan.stages_size()) {
    return plan.stages(stage).name();
  }
  return "late-track";
}

Decision EvaluateGate(const GateInput& in) {
  const Plan& plan = *in.plan;
  const TrackerSnapshot& t = *in.telemetry;
  Decision d;
  d.set_stage(static_cast<uint32_t>(in.stage));

  // Per-signal summaries, for the record.
  for (size_t i = 0; i < t.signal_counts.size(); ++i) {
    const SignalCounts& c = t.signal_counts[i];
    SignalSummary* s = d.add_signals();
    s->set_signal(c.signal);
    s->mutable_treatment()->set_affected_hosts(c.treatment_affected);
    s->mutable_treatment()->set_hosts(t.treatment_hosts);
    s->mutable_treatment()->set_host_hours(t.treatment_host_hours);
    s->mutable_control()->set_affected_hosts(c.control_affected);
    s->mutable_control()->set_hosts(t.control_hosts);
    s->mutable_control()->set_host_hours(t.control_host_hours);
    s->set_e_value(c.compared ? c.e_value : 1.0);
    s->set_e_threshold(c.e_threshold);
  }

  std::vector<Evidence> halts;
  // The effective policy of every stage, the late track last.
  std::vector<GatePolicy> computed;
  if (in.policies == nullptr ||
      in.policies->size() != static_cast<size_t>(plan.stages_size()) + 1) {
    computed = EffectivePolicies(plan);
  }
  const std::vector<GatePolicy>& policies =
      computed.empty() ? *in.policies : computed;
  auto policy_of = [&](int stage) -> const GatePolicy& {
    return policies[std::clamp(stage, 0, plan.stages_size())];
  };
  // 1 + 2: breaker and ceiling, every cohort under its own stage's policy,
  // each guarded by the control arm (ControlGuard).
  const int cohorts = std::min<int>(in.stage + 1, t.cohorts.size());
  for (int st = 0; st < cohorts; ++st) {
    const GatePolicy& policy = policy_of(st);
    const CohortCounts& c = t.cohorts[st];
    const std::string stage_name = StageName(plan, st);
    for (const SignalRule& r : policy.signals()) {
      const int idx = FindSignal(t, r.signal());
      if (idx < 0) continue;
      const uint64_t affected = c.affected[idx];
      if (affected == 0) continue;
      const uint64_t at_risk =
          c.exposed - std::min(c.exposed, c.pre_affected[idx]);
      if (r.max_affected_hosts() > 0 && affected >= r.max_affected_hosts()) {
        const Guard g =
            ControlGuard(t, c, r.signal(), idx, r.margin(), affected);
        if (!g.explained()) {
          halts.push_back(MakeEvidence(
              "circuit_breaker", r.signal(), affected, c.exposed,
              static_cast<double>(affected), r.max_affected_hosts(),
              absl::StrFormat("%d of %d hosts exposed in stage %s showed "
                              "\"%s\"; the circuit breaker trips at %d, and "
                              "%s.",
                              affected, c.exposed, stage_name, r.signal(),
                              r.max_affected_hosts(), GuardSentence(g))));
        }
      }
      if (r.max_affected_fraction() > 0 &&
          at_risk >= policy.ceiling_min_exposed_hosts() && at_risk > 0) {
        const double frac =
            static_cast<double>(affected) / static_cast<double>(at_risk);
        if (frac > r.max_affected_fraction()) {
          const Guard g =
              ControlGuard(t, c, r.signal(), idx, r.margin(), affected);
          if (!g.explained()) {
            halts.push_back(MakeEvidence(
                "ceiling", r.signal(), affected, c.exposed, frac,
                r.max_affected_fraction(),
                absl::StrFormat("%.2f%% of the %d hosts exposed in stage %s "
                                "showed \"%s\" (%d hosts); the ceiling is "
                                "%.2f%%, and %s.",
                                100 * frac, at_risk, stage_name, r.signal(),
                                affected, 100 * r.max_affected_fraction(),
                                GuardSentence(g))));
          }
        }
      }
    }
  }
  // 3: comparison with control, rollout-wide.
  for (const SignalCounts& c : t.signal_counts) {
    if (!c.compared || !c.rejected) continue;
    halts.push_back(MakeEvidence(
        "control_comparison", c.signal, c.treatment_affected, t.treatment_hosts,
        c.e_value, c.e_threshold,
        absl::StrFormat(
            "\"%s\" is more frequent on the release than on the previous one: "
            "%d of %d exposed hosts vs %d of %d control hosts; the sequential "
            "test's e-value reached %.3g (halts at %.3g).",
            c.signal, c.treatment_affected, t.treatment_hosts,
            c.control_affected, t.control_hosts, c.e_value, c.e_threshold)));
  }
  if (!halts.empty() && in.enforce_halts) {
    d.set_verdict(config::v1::HALT);
    for (Evidence& e : halts) *d.add_evidence() = std::move(e);
    d.set_summary(absl::StrCat("HALT: ", d.evidence(0).explanation()));
    return d;
  }

  const GatePolicy& policy = policy_of(in.stage);
  const std::string stage_name = StageName(plan, in.stage);
  auto hold = [&](Evidence e) {
    d.set_verdict(config::v1::HOLD);
    d.set_summary(absl::StrCat("HOLD: ", e.explanation()));
    *d.add_evidence() = std::move(e);
    return d;
  };

  // 4: freshness.
  const absl::Duration max_staleness = FromProto(policy.max_staleness());
  if (t.last_ingest == absl::InfinitePast()) {
    return hold(MakeEvidence(
        "freshness", "", 0, 0, 0, absl::ToDoubleSeconds(max_staleness),
        absl::StrCat("No telemetry received since ",
                     absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t.created,
                                      absl::UTCTimeZone()),
                     "; the gate will not promote without data.")));
  }
  const absl::Duration age = in.now - t.last_ingest;
  if (age > max_staleness) {
    return hold(
        MakeEvidence("freshness", "", 0, 0, absl::ToDoubleSeconds(age),
                     absl::ToDoubleSeconds(max_staleness),
                     absl::StrCat("Telemetry is stale: the last batch arrived ",
                                  HumanDuration(age), " ago (limit ",
                                  HumanDuration(max_staleness),
                                  "); holding until fresh data arrives.")));
  }

  // After a restart or a telemetry gap, exposed hosts that died meanwhile
  // only show up as silent one silence timeout later: do not promote before
  // the gate has watched that long.
  // (With 10 % + 10 s of slack: a host is silent only strictly after the
  // timeout, and the controller sweeps at intervals.)
  const absl::Duration silence_timeout = FromProto(policy.silence_timeout());
  const absl::Duration must_watch =
      silence_timeout + silence_timeout / 10 + absl::Seconds(10);
  const absl::Duration watched = in.now - t.fresh_since;
  if (watched < must_watch) {
    return hold(MakeEvidence(
        "freshness", "", 0, 0, absl::ToDoubleSeconds(watched),
        absl::ToDoubleSeconds(silence_timeout),
        absl::StrCat("Telemetry has been flowing for ", HumanDuration(watched),
                     " since the last restart or gap; promotion waits for a "
                     "full silence timeout (",
                     HumanDuration(silence_timeout),
                     " plus slack) so that hosts that died meanwhile can "
                     "show up.")));
  }

  if (in.state == config::v1::PAUSED) {
    return hold(MakeEvidence("paused", "", 0, 0, 0, 0,
                             "Paused by an operator; safety rules keep "
                             "running and none has tripped."));
  }
  if (in.state == config::v1::PENDING) {
    return hold(MakeEvidence("pending", "", 0, 0, 0, 0,
                             "The rollout has not started."));
  }

  // 5: promotion.
  // Every signal must be judged somehow: a rule that can halt on an
  // absolute count (breaker; ceiling once enough hosts are exposed) or a
  // comparison that has a control arm to compare with. A signal that is
  // only compared, with no control host at risk, cannot be judged: hold.
  for (const SignalRule& r : policy.signals()) {
    if (r.max_affected_hosts() > 0) continue;
    const int idx = FindSignal(t, r.signal());
    if (idx < 0 || idx >= static_cast<int>(t.signal_counts.size())) continue;
    const SignalCounts& sc = t.signal_counts[idx];
    const CohortCounts& c = in.stage < static_cast<int>(t.cohorts.size())
                                ? t.cohorts[in.stage]
                                : CohortCounts();
    if (r.max_affected_fraction() > 0 &&
        c.exposed >= policy.ceiling_min_exposed_hosts()) {
      continue;
    }
    if (r.compare_with_control() && sc.control_at_risk > 0) continue;
    return hold(MakeEvidence(
        "not_judged", r.signal(), 0, c.exposed, 0, 0,
        absl::StrFormat(
            "\"%s\" cannot be judged in stage %s: %s, and no breaker%s "
            "bounds it; the gate will not promote on a comparison it cannot "
            "make.",
            r.signal(), stage_name,
            r.compare_with_control()
                ? "no control host is at risk to compare with"
                : "it is not compared with control",
            r.max_affected_fraction() > 0
                ? absl::StrFormat(" (and not yet the %d exposed hosts its "
                                  "ceiling needs)",
                                  policy.ceiling_min_exposed_hosts())
                : "")));
  }
  const CohortCounts empty;
  const CohortCounts& cur = in.stage < static_cast<int>(t.cohorts.size())
                                ? t.cohorts[in.stage]
                                : empty;
  const absl::Duration bake = StageBakeTime(plan, in.stage);
  const absl::Duration baked = in.now - in.stage_started_at;
  if (baked < bake) {
    return hold(MakeEvidence(
        "bake_time", "", cur.exposed, cur.exposed, absl::ToDoubleSeconds(baked),
        absl::ToDoubleSeconds(bake),
        absl::StrCat("Stage ", stage_name, " has baked ", HumanDuration(baked),
                     " of ", HumanDuration(bake), " with no rule tripped (",
                     cur.exposed, " hosts exposed).")));
  }
  const bool late = in.stage >= plan.stages_size();
  // Evidence means hosts that ran the release: told it is not enough.
  const uint64_t min_hosts = late ? 0 : policy.min_exposed_hosts();
  if (cur.healthy < min_hosts) {
    return hold(MakeEvidence(
        "min_exposure", "", 0, cur.exposed, static_cast<double>(cur.healthy),
        static_cast<double>(min_hosts),
        absl::StrCat("Stage ", stage_name, " has ", cur.healthy,
                     " hosts that came up on the release and stayed healthy (",
                     cur.exposed, " exposed); promotion needs ", min_hosts,
                     ".")));
  }
  if (!late && cur.host_hours < policy.min_exposed_host_hours()) {
    return hold(MakeEvidence(
        "min_exposure", "", 0, cur.exposed, cur.host_hours,
        policy.min_exposed_host_hours(),
        absl::StrFormat("Stage %s has %.1f host-hours of exposure; promotion "
                        "needs %.1f.",
                        stage_name, cur.host_hours,
                        policy.min_exposed_host_hours())));
  }
  // Evidence of safety: every compared signal's relative risk bounded
  // below the stage's limit.
  const double max_rr =
      late ? 0 : plan.stages(in.stage).promote_max_relative_risk();
  if (max_rr > 0) {
    for (const SignalRule& r : policy.signals()) {
      if (!r.compare_with_control()) continue;
      const int idx = FindSignal(t, r.signal());
      if (idx < 0 || idx >= static_cast<int>(t.signal_counts.size())) continue;
      const SignalCounts& c = t.signal_counts[idx];
      const double bound = RelativeRiskUpperBound(
          c.treatment_affected, t.treatment_host_hours, c.control_affected,
          t.control_host_hours, policy.alpha());
      if (bound < max_rr) continue;
      return hold(MakeEvidence(
          "relative_risk_bound", r.signal(), c.treatment_affected,
          t.treatment_hosts, bound, max_rr,
          absl::StrFormat(
              "Promotion out of stage %s needs evidence that \"%s\" is less "
              "than %.3g times as frequent on the release as on the previous "
              "one; %d of %d exposed hosts (%.0f host-hours) vs %d of %d "
              "control hosts (%.0f host-hours) bound the ratio only below "
              "%.3g (at %.3g%% confidence). Baking on.",
              stage_name, r.signal(), max_rr, c.treatment_affected,
              t.treatment_hosts, t.treatment_host_hours, c.control_affected,
              t.control_hosts, t.control_host_hours, bound,
              100 * (1 - policy.alpha()))));
    }
  }
  d.set_verdict(config::v1::PROMOTE);
  *d.add_evidence() = MakeEvidence(
      "all_rules_passed", "", 0, cur.exposed, absl::ToDoubleSeconds(baked),
      absl::ToDoubleSeconds(bake),
      absl::StrCat("Stage ", stage_name, " baked ", HumanDuration(baked),
                   " with ", cur.exposed,
                   " exposed hosts, fresh telemetry and no rule tripped."));
  d.set_summary(absl::StrCat("PROMOTE: ", d.evidence(0).explanation()));
  return d;
}

}  // namespace ringfence
