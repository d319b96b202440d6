#include "ringfence/gate.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringfence {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kPlan[] = R"pb(
  policy {
    max_staleness { seconds: 120 }
    min_exposed_hosts: 5
    min_exposed_host_hours: 1
    ceiling_min_exposed_hosts: 20
    signals {
      signal: "crash"
      max_affected_hosts: 0
      max_affected_fraction: 0.1
      compare_with_control: true
    }
    signals { signal: "silent" compare_with_control: true }
  }
  stages {
    name: "canary"
    audience { labels: "canary" }
    bake_time { seconds: 600 }
    policy {
      min_exposed_hosts: 5
      signals { signal: "crash" max_affected_hosts: 3 }
      signals { signal: "silent" max_affected_hosts: 2 }
    }
  }
  stages {
    name: "half"
    audience { percent: 50 }
    bake_time { seconds: 3600 }
  }
  stages {
    name: "all"
    audience { percent: 100 }
    bake_time { seconds: 3600 }
  }
)pb";

class GateTest : public ::testing::Test {
 protected:
  GateTest() {
    EXPECT_TRUE(ParseTextOrJson(kPlan, &plan_).ok());
    EXPECT_TRUE(ValidatePlan(plan_).ok());
    now_ = absl::FromUnixSeconds(1700000000);
    snap_.now = now_;
    snap_.created = now_ - absl::Hours(2);
    snap_.last_ingest = now_ - absl::Seconds(5);
    snap_.fresh_since = now_ - absl::Hours(2);
    snap_.signals = {"crash", "unclean_reboot", "silent", "apply_stuck"};
    snap_.signal_counts.resize(4);
    for (int i = 0; i < 4; ++i) {
      snap_.signal_counts[i].signal = snap_.signals[i];
      snap_.signal_counts[i].control_at_risk = 1000;
    }
    snap_.signal_counts[0].compared = true;
    snap_.signal_counts[0].e_threshold = 200;
    snap_.signal_counts[2].compared = true;
    snap_.signal_counts[2].e_threshold = 200;
    snap_.cohorts.resize(4);
    snap_.cohorts[0].exposed = 10;
    snap_.cohorts[0].healthy = 10;
    snap_.cohorts[0].host_hours = 5;
    snap_.treatment_hosts = 10;
    snap_.control_hosts = 1000;
  }

  Decision Evaluate(int stage, absl::Duration baked,
                    RolloutState state = config::v1::RUNNING) {
    GateInput in;
    in.plan = &plan_;
    in.stage = stage;
    in.state = state;
    in.stage_started_at = now_ - baked;
    in.now = now_;
    in.telemetry = &snap_;
    return EvaluateGate(in);
  }

  Plan plan_;
  absl::Time now_;
  TrackerSnapshot snap_;
};

TEST_F(GateTest, PromotesWhenBakedFreshAndQuiet) {
  const Decision d = Evaluate(0, absl::Minutes(11));
  EXPECT_EQ(d.verdict(), config::v1::PROMOTE);
  ASSERT_EQ(d.evidence_size(), 1);
  EXPECT_EQ(d.evidence(0).rule(), "all_rules_passed");
  EXPECT_THAT(d.summary(), HasSubstr("Stage canary baked 11m"));
  ASSERT_EQ(d.signals_size(), 4);
  EXPECT_EQ(d.signals(0).signal(), "crash");
  EXPECT_EQ(d.signals(0).control().hosts(), 1000u);
}

TEST_F(GateTest, HoldsWhileBaking) {
  const Decision d = Evaluate(0, absl::Minutes(4));
  EXPECT_EQ(d.verdict(), config::v1::HOLD);
  EXPECT_EQ(d.evidence(0).rule(), "bake_time");
  EXPECT_THAT(d.summary(), HasSubstr("baked 4m of 10m"));
}

TEST_F(GateTest, HoldsWithoutEnoughExposure) {
  snap_.cohorts[0].exposed = 4;
  snap_.cohorts[0].healthy = 4;
  Decision d = Evaluate(0, absl::Hours(1));
  EXPECT_EQ(d.verdict(), config::v1::HOLD);
  EXPECT_EQ(d.evidence(0).rule(), "min_exposure");
  EXPECT_THAT(d.summary(),
              HasSubstr("4 hosts that came up on the release and stayed "
                        "healthy (4 exposed); promotion needs 5"));
  // Hosts told the release are not evidence; hosts that ran it are.
  snap_.cohorts[0].exposed = 10;
  d = Evaluate(0, absl::Hours(1));
  EXPECT_THAT(d.summary(), HasSubstr("(10 exposed); promotion needs 5"));
  snap_.cohorts[0].healthy = 5;
  EXPECT_EQ(Evaluate(0, absl::Hours(1)).verdict(), config::v1::PROMOTE);
  // Host-hours are checked too (the plan-level policy asks for 1).
  snap_.cohorts[1].exposed = 50;
  snap_.cohorts[1].healthy = 50;
  snap_.cohorts[1].host_hours = 0.5;
  d = Evaluate(1, absl::Hours(2));
  EXPECT_EQ(d.verdict(), config::v1::HOLD);
  EXPECT_THAT(d.summary(), HasSubstr("0.5 host-hours"));
}

TEST_F(GateTest, MissingOrStaleTelemetryNeverPromotes) {
  snap_.last_ingest = absl::InfinitePast();
  Decision d = Evaluate(0, absl::Hours(5));
  EXPECT_EQ(d.verdict(), config::v1::HOLD);
  EXPECT_EQ(d.evidence(0).rule(), "freshness");
  EXPECT_THAT(d.summary(), HasSubstr("No telemetry received"));
  snap_.last_ingest = now_ - absl::Minutes(3);
  d = Evaluate(0, absl::Hours(5));
  EXPECT_EQ(d.verdict(), config::v1::HOLD);
  EXPECT_THAT(d.summary(), HasSubstr("stale: the last batch arrived 3m ago"));
}

// After a restart (or a telemetry gap) the gate must watch for a full
// silence timeout before promoting: hosts that died while it was not
// listening only become silent that much later.
TEST_F(GateTest, NoPromotionUntilASilenceTimeoutOfFreshTelemetry) {
  snap_.fresh_since = now_ - absl::Minutes(3);  // default timeout: 10m
  Decision d = Evaluate(0, absl::Hours(5));
  EXPECT_EQ(d.verdict(), config::v1::HOLD);
  EXPECT_EQ(d.evidence(0).rule(), "freshness");
  EXPECT_THAT(d.summary(), HasSubstr("waits for a full silence timeout"));
  snap_.fresh_since = now_ - absl::Minutes(10);  // exactly the timeout
  EXPECT_EQ(Evaluate(0, absl::Hours(5)).verdict(), config::v1::HOLD);
  snap_.fresh_since = now_ - absl::Minutes(12);
  EXPECT_EQ(Evaluate(0, absl::Hours(5)).verdict(), config::v1::PROMOTE);
}

TEST_F(GateTest, CircuitBreakerHalts) {
  snap_.cohorts[0].affected[0] = 3;  // crash
  const Decision d = Evaluate(0, absl::Minutes(1));
  EXPECT_EQ(d.verdict(), config::v1::HALT);
  EXPECT_EQ(d.evidence(0).rule(), "circuit_breaker");
  EXPECT_EQ(d.evidence(0).signal(), "crash");
  EXPECT_EQ(d.evidence(0).affected_hosts(), 3u);
  EXPECT_EQ(d.evidence(0).threshold(), 3);
  EXPECT_THAT(d.summary(),
              HasSubstr("3 of 10 hosts exposed in stage canary showed "
                        "\"crash\"; the circuit breaker trips at 3"));
}

// Shadow mode (the simulator's baselines): a tripped rule does not halt,
// and the rest of the gate decides as if it had not tripped.
TEST_F(GateTest, ShadowModeDoesNotHaltButDecidesTheRest) {
  snap_.cohorts[0].affected[0] = 3;
  GateInput in;
  in.plan = &plan_;
  in.stage = 0;
  in.stage_started_at = now_ - absl::Minutes(11);
  in.now = now_;
  in.telemetry = &snap_;
  EXPECT_EQ(EvaluateGate(in).verdict(), config::v1::HALT);
  in.enforce_halts = false;
  EXPECT_EQ(EvaluateGate(in).verdict(), config::v1::PROMOTE);
  in.stage_started_at = now_ - absl::Minutes(4);
  EXPECT_EQ(EvaluateGate(in).evidence(0).rule(), "bake_time");
}

TEST_F(GateTest, HaltsEvenWhenStaleOrPaused) {
  snap_.cohorts[0].affected[2] = 2;  // silent
  snap_.last_ingest = now_ - absl::Hours(1);
  EXPECT_EQ(Evaluate(0, absl::Minutes(1), config::v1::PAUSED).verdict(),
            config::v1::HALT);
}

// An outage silences hosts whatever they run: a canary cohort whose silence
// the control arm's hazard over the same hours explains does not trip the
// silence breaker; a cohort that is silent while control is not does.
TEST_F(GateTest, BreakersAreControlAware) {
  snap_.cohorts[0].exposed = 8;
  snap_.cohorts[0].healthy = 8;
  snap_.cohorts[0].affected[2] = 3;  // 3 of 8 canaries silent
  // The control's hazard expects 4.8 of the 8 (a 60 % outage), tightly.
  snap_.cohorts[0].control_expected[2] = 4.8;
  snap_.cohorts[0].control_expected_var[2] = 0.01;
  EXPECT_EQ(Evaluate(0, absl::Minutes(1)).verdict(), config::v1::HOLD);
  // The control's hazard expects 0.16 of them (2 %): 3 silent canaries are
  // not yet evidence at the guard's level (e-value 111 < 1000), 4 are (a
  // boot loop).
  snap_.cohorts[0].control_expected[2] = 0.16;
  snap_.cohorts[0].control_expected_var[2] = 0.0004;
  EXPECT_EQ(Evaluate(0, absl::Minutes(1)).verdict(), config::v1::HOLD);
  snap_.cohorts[0].affected[2] = 4;
  Decision d = Evaluate(0, absl::Minutes(1));
  EXPECT_EQ(d.verdict(), config::v1::HALT);
  EXPECT_EQ(d.evidence(0).rule(), "circuit_breaker");
  EXPECT_THAT(d.summary(),
              HasSubstr("the control arm's hazard explains at most 0.14 of "
                        "them (e-value 2.32e+03, trips at 1e+03)"));
  // Crashes are guarded the same way (K8: hosts that crash whatever they
  // run)...
  snap_.cohorts[0].affected[2] = 0;
  snap_.cohorts[0].affected[0] = 3;
  snap_.cohorts[0].control_expected[0] = 4;
  snap_.cohorts[0].control_expected_var[0] = 0.04;
  EXPECT_EQ(Evaluate(0, absl::Minutes(1)).verdict(), config::v1::HOLD);
  // ... and with nothing to compare with, the breaker is absolute (K3).
  snap_.cohorts[0].control_expected[0] = 0;
  snap_.cohorts[0].control_expected_var[0] = 0;
  d = Evaluate(0, absl::Minutes(1));
  EXPECT_EQ(d.verdict(), config::v1::HALT);
  EXPECT_THAT(d.summary(),
              HasSubstr("nothing in the control arm explains them"));
  // A noisy control estimate does not explain much: its lower bound is
  // used (one control event among 5 hosts at risk): it explains 0.17 of
  // them, so 4 crashes trip (3 are an e-value of 66 only).
  snap_.cohorts[0].control_expected[0] = 1.6;
  snap_.cohorts[0].control_expected_var[0] = 1.6 * 1.6;
  EXPECT_EQ(Evaluate(0, absl::Minutes(1)).verdict(), config::v1::HOLD);
  snap_.cohorts[0].affected[0] = 4;
  EXPECT_EQ(Evaluate(0, absl::Minutes(1)).verdict(), config::v1::HALT);
}

// local_fallback (a host's own boot guard gave up on the release) has no
// control counterpart: its breaker is absolute.
TEST_F(GateTest, LocalFallbackBreakerIsAbsolute) {
  const int idx = static_cast<int>(snap_.signals.size());
  snap_.signals.push_back("local_fallback");
  snap_.signal_counts.emplace_back();
  snap_.signal_counts.back().signal = "local_fallback";
  snap_.cohorts[0].affected[idx] = 3;
  snap_.cohorts[0].control_expected[idx] = 50;  // ignored
  const Decision d = Evaluate(0, absl::Minutes(1));
  EXPECT_EQ(d.verdict(), config::v1::HALT);
  EXPECT_EQ(d.evidence(0).signal(), "local_fallback");
  EXPECT_THAT(d.summary(),
              HasSubstr("nothing in the control arm explains them"));
}

// K3: a signal that is only compared with control, with no control host at
// risk, cannot be judged: the gate holds instead of promoting.
TEST_F(GateTest, ASignalThatCannotBeJudgedHolds) {
  SignalRule* crash = plan_.mutable_stages(0)->mutable_policy()->add_signals();
  crash->set_signal("unclean_reboot");
  crash->set_max_affected_hosts(0);
  crash->set_max_affected_fraction(0);
  crash->set_compare_with_control(true);
  ASSERT_TRUE(ValidatePlan(plan_).ok());
  snap_.signal_counts[1].control_at_risk = 0;
  Decision d = Evaluate(0, absl::Minutes(11));
  EXPECT_EQ(d.verdict(), config::v1::HOLD);
  EXPECT_EQ(d.evidence(0).rule(), "not_judged");
  EXPECT_THAT(d.summary(), HasSubstr("\"unclean_reboot\" cannot be judged in "
                                     "stage canary: no control host is at "
                                     "risk to compare with"));
  snap_.signal_counts[1].control_at_risk = 50;
  EXPECT_EQ(Evaluate(0, absl::Minutes(11)).verdict(), config::v1::PROMOTE);
}

TEST_F(GateTest, PausedHoldsWhenNothingTripped) {
  const Decision d = Evaluate(0, absl::Hours(1), config::v1::PAUSED);
  EXPECT_EQ(d.verdict(), config::v1::HOLD);
  EXPECT_EQ(d.evidence(0).rule(), "paused");
}

TEST_F(GateTest, CeilingAppliesOnlyAfterMinimumSample) {
  snap_.cohorts[1].exposed = 19;
  snap_.cohorts[1].healthy = 19;
  snap_.cohorts[1].host_hours = 10;
  snap_.cohorts[1].affected[0] = 5;  // 26 % but only 19 hosts
  EXPECT_EQ(Evaluate(1, absl::Minutes(1)).verdict(), config::v1::HOLD);
  snap_.cohorts[1].exposed = 40;  // 12.5 % of 40 > 10 %
  snap_.cohorts[1].healthy = 40;
  const Decision d = Evaluate(1, absl::Minutes(1));
  EXPECT_EQ(d.verdict(), config::v1::HALT);
  EXPECT_EQ(d.evidence(0).rule(), "ceiling");
  EXPECT_DOUBLE_EQ(d.evidence(0).statistic(), 5.0 / 40);
  EXPECT_THAT(d.summary(), HasSubstr("12.50% of the 40 hosts exposed"));
}

TEST_F(GateTest, ControlComparisonHalts) {
  snap_.signal_counts[2].rejected = true;
  snap_.signal_counts[2].e_value = 350;
  snap_.signal_counts[2].treatment_affected = 4;
  snap_.signal_counts[2].control_affected = 1;
  const Decision d = Evaluate(1, absl::Minutes(1));
  EXPECT_EQ(d.verdict(), config::v1::HALT);
  EXPECT_EQ(d.evidence(0).rule(), "control_comparison");
  EXPECT_EQ(d.evidence(0).signal(), "silent");
  EXPECT_DOUBLE_EQ(d.evidence(0).statistic(), 350);
  EXPECT_THAT(d.summary(), HasSubstr("4 of 10 exposed hosts vs 1 of 1000"));
}

TEST_F(GateTest, EarlierCohortsStayUnderTheirOwnRules) {
  // The canary cohort's breaker (2 silent hosts) still trips in stage 2.
  snap_.cohorts[0].affected[2] = 2;
  snap_.cohorts[2].exposed = 100;
  snap_.cohorts[2].healthy = 100;
  snap_.cohorts[2].host_hours = 100;
  const Decision d = Evaluate(2, absl::Hours(2));
  EXPECT_EQ(d.verdict(), config::v1::HALT);
  EXPECT_THAT(d.summary(), HasSubstr("stage canary"));
}

TEST_F(GateTest, LaterStagesDoNotInheritTheCanaryBreaker) {
  // 3 crashes among 1000 hosts of stage "half" do not trip the canary's
  // breaker of 3: stage "half" has no breaker.
  snap_.cohorts[1].exposed = 1000;
  snap_.cohorts[1].healthy = 1000;
  snap_.cohorts[1].host_hours = 1000;
  snap_.cohorts[1].affected[0] = 3;
  EXPECT_EQ(Evaluate(1, absl::Hours(2)).verdict(), config::v1::PROMOTE);
}

TEST_F(GateTest, LateTrackNeedsNoMinimumExposure) {
  plan_.mutable_late_track()->mutable_bake_time()->set_seconds(600);
  Decision d = Evaluate(3, absl::Minutes(5));
  EXPECT_EQ(d.verdict(), config::v1::HOLD);
  EXPECT_THAT(d.summary(), HasSubstr("late-track"));
  d = Evaluate(3, absl::Minutes(11));
  EXPECT_EQ(d.verdict(), config::v1::PROMOTE);
}

TEST(StageBakeTimeTest, LastStageIncludesLateTrackExtraBake) {
  Plan plan;
  ASSERT_TRUE(ParseTextOrJson(kPlan, &plan).ok());
  plan.mutable_late_track()->mutable_extra_bake()->set_seconds(1800);
  EXPECT_EQ(StageBakeTime(plan, 0), absl::Minutes(10));
  EXPECT_EQ(StageBakeTime(plan, 2), absl::Minutes(90));
  EXPECT_EQ(StageName(plan, 3), "late-track");
}

// ---- Evidence of safety before promotion ----------------------------------

TEST_F(GateTest, PromotionWaitsForTheRelativeRiskBound) {
  plan_.mutable_stages(1)->set_promote_max_relative_risk(2);
  ASSERT_TRUE(ValidatePlan(plan_).ok());
  snap_.cohorts[1].exposed = 5000;
  snap_.cohorts[1].healthy = 5000;
  snap_.cohorts[1].host_hours = 5000;
  snap_.treatment_hosts = 5000;
  snap_.control_hosts = 5000;
  snap_.treatment_host_hours = 5000;
  snap_.control_host_hours = 5000;
  SignalCounts& crash = snap_.signal_counts[0];

  // Twice the control's crash rate, not (yet) enough for the comparison
  // test to halt: the stage does not promote.
  crash.treatment_affected = 100;
  crash.control_affected = 50;
  Decision d = Evaluate(1, absl::Hours(2));
  EXPECT_EQ(d.verdict(), config::v1::HOLD);
  ASSERT_EQ(d.evidence_size(), 1);
  EXPECT_EQ(d.evidence(0).rule(), "relative_risk_bound");
  EXPECT_EQ(d.evidence(0).signal(), "crash");
  EXPECT_GT(d.evidence(0).statistic(), 2);
  EXPECT_DOUBLE_EQ(d.evidence(0).threshold(), 2);
  EXPECT_THAT(d.summary(),
              AllOf(HasSubstr("less than 2 times as frequent"),
                    HasSubstr("100 of 5000 exposed hosts (5000 host-hours) "
                              "vs 50 of 5000 control hosts")));

  // Equal rates: bounded below 2, promotes.
  crash.treatment_affected = 50;
  EXPECT_EQ(Evaluate(1, absl::Hours(2)).verdict(), config::v1::PROMOTE);
  // No crash anywhere: nothing suggests harm.
  crash.treatment_affected = 0;
  crash.control_affected = 0;
  EXPECT_EQ(Evaluate(1, absl::Hours(2)).verdict(), config::v1::PROMOTE);
  // Other stages do not ask for the bound.
  crash.treatment_affected = 100;
  crash.control_affected = 50;
  snap_.cohorts[2].exposed = 5000;
  snap_.cohorts[2].healthy = 5000;
  snap_.cohorts[2].host_hours = 5000;
  EXPECT_EQ(Evaluate(2, absl::Hours(2)).verdict(), config::v1::PROMOTE);
}

TEST(PromoteMaxRelativeRiskTest, MustBeOffOrAboveOne) {
  Plan plan;
  ASSERT_TRUE(ParseTextOrJson(kPlan, &plan).ok());
  for (double bad : {1.0, 0.5, -2.0, std::nan("")}) {
    plan.mutable_stages(1)->set_promote_max_relative_risk(bad);
    const absl::Status s = ValidatePlan(plan);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()),
                HasSubstr("stages[1].promote_max_relative_risk: must be 0 "
                          "(off) or > 1"));
  }
  plan.mutable_stages(1)->set_promote_max_relative_risk(1.5);
  EXPECT_TRUE(ValidatePlan(plan).ok());
}

}  // namespace
}  // namespace ringfence
