#include "ringfence/gate.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

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

// P(X >= k) for X ~ Binomial(n, p), summed in log space from k upwards.
double BinomialUpperTail(uint64_t k, uint64_t n, double p) {
  if (k == 0) return 1;
  if (k > n) return 0;
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  if (static_cast<double>(k) <= static_cast<double>(n) * p)
    return 1;  // >= ~0.5
  const double lp = std::log(p), lq = std::log1p(-p);
  double log_term = std::lgamma(n + 1.0) - std::lgamma(k + 1.0) -
                    std::lgamma(n - k + 1.0) + k * lp + (n - k) * lq;
  double sum = 0;
  for (uint64_t x = k; x <= n; ++x) {
    const double term = std::exp(log_term);
    sum += term;
    if (term < sum * 1e-12) break;  // terms only shrink above the mode
    log_term += std::log(static_cast<double>(n - x)) -
                std::log(static_cast<double>(x + 1)) + lp - lq;
  }
  return std::min(1.0, sum);
}

// A silent cohort trips a breaker or ceiling only when this improbable under
// the control arm's silence (times the rule's margin): an outage silences
// both arms alike; a boot loop silences only the release's hosts.
constexpr double kSilenceGuardP = 1e-3;

int FindSignal(const TrackerSnapshot& t, absl::string_view signal) {
  for (size_t i = 0; i < t.signals.size(); ++i) {
    if (t.signals[i] == signal) return static_cast<int>(i);
  }
  return -1;
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
  // Silence is special: an outage silences hosts whatever they run, so a
  // cohort's silence trips the breaker or ceiling only if it is also
  // improbable given the control arm's silent fraction (kSilenceGuardP).
  // Crashes trip them whatever the rates.
  // The control arm's silent fraction: hosts that went silent while on the
  // previous release, over every host tracked (all start in control). It
  // only grows, like the cohorts' counts, and survives the control arm
  // shrinking to nothing at 100 %.
  auto control_fraction = [&](int idx) {
    const SignalCounts& c = t.signal_counts[idx];
    return t.tracked_hosts == 0 ? 0.0
                                : static_cast<double>(c.control_affected) /
                                      static_cast<double>(t.tracked_hosts);
  };
  // 1 + 2: breaker and ceiling, every cohort under its own stage's policy.
  const int cohorts = std::min<int>(in.stage + 1, t.cohorts.size());
  for (int st = 0; st < cohorts; ++st) {
    const GatePolicy policy = EffectivePolicy(plan, st);
    const CohortCounts& c = t.cohorts[st];
    const std::string stage_name = StageName(plan, st);
    for (const SignalRule& r : policy.signals()) {
      const int idx = FindSignal(t, r.signal());
      if (idx < 0) continue;
      const uint64_t affected = c.affected[idx];
      if (r.signal() == kSignalSilent && c.exposed > 0 &&
          idx < static_cast<int>(t.signal_counts.size()) &&
          BinomialUpperTail(
              affected, c.exposed,
              std::min(1.0, (1 + r.margin()) * control_fraction(idx))) >
              kSilenceGuardP) {
        continue;  // explained by the control arm's silence (an outage)
      }
      if (r.max_affected_hosts() > 0 && affected >= r.max_affected_hosts()) {
        halts.push_back(MakeEvidence(
            "circuit_breaker", r.signal(), affected, c.exposed,
            static_cast<double>(affected), r.max_affected_hosts(),
            absl::StrFormat("%d of %d hosts exposed in stage %s showed "
                            "\"%s\"; the circuit breaker trips at %d.",
                            affected, c.exposed, stage_name, r.signal(),
                            r.max_affected_hosts())));
      }
      if (r.max_affected_fraction() > 0 &&
          c.exposed >= policy.ceiling_min_exposed_hosts() && c.exposed > 0) {
        const double frac =
            static_cast<double>(affected) / static_cast<double>(c.exposed);
        if (frac > r.max_affected_fraction()) {
          halts.push_back(MakeEvidence(
              "ceiling", r.signal(), affected, c.exposed, frac,
              r.max_affected_fraction(),
              absl::StrFormat("%.2f%% of the %d hosts exposed in stage %s "
                              "showed \"%s\" (%d hosts); the ceiling is "
                              "%.2f%%.",
                              100 * frac, c.exposed, stage_name, r.signal(),
                              affected, 100 * r.max_affected_fraction())));
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

  const GatePolicy policy = EffectivePolicy(plan, in.stage);
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
  const uint64_t min_hosts = late ? 0 : policy.min_exposed_hosts();
  if (cur.exposed < min_hosts) {
    return hold(MakeEvidence(
        "min_exposure", "", 0, cur.exposed, static_cast<double>(cur.exposed),
        static_cast<double>(min_hosts),
        absl::StrCat("Stage ", stage_name, " has ", cur.exposed,
                     " exposed hosts; promotion needs ", min_hosts, ".")));
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
