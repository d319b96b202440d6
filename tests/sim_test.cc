// Tests of the fleet simulator itself: its ground truth matches the
// scenario, outages silence both arms, seeds reproduce, and the headline
// scenarios behave at small scale.
#include "ringfence/sim.h"

#include <cmath>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::testing::HasSubstr;

std::string SourceDir() { return RINGFENCE_SOURCE_DIR; }

Plan DetectionPlan() {
  Plan plan;
  EXPECT_OK(
      LoadMessageFile(SourceDir() + "/bench/plans/detection.textproto", &plan));
  return plan;
}

Scenario Base(uint64_t hosts) {
  Scenario s;
  s.set_name("test");
  s.mutable_fleet()->set_hosts(hosts);
  s.mutable_behavior()->mutable_heartbeat_interval()->set_seconds(60);
  s.mutable_max_duration()->set_seconds(4 * 3600);
  return s;
}

TEST(SimTest, CrashRateMatchesTheScenario) {
  Scenario s = Base(20000);
  s.mutable_behavior()->set_crash_per_host_hour(0.01);
  s.mutable_max_duration()->set_seconds(2 * 3600);
  SimOptions o;
  o.seed = 3;
  auto run = Simulate(s, DetectionPlan(), o);
  ASSERT_OK(run);
  const double expected = 0.01 * run->online_host_hours;
  ASSERT_GT(expected, 300);
  // Poisson: within 4 standard deviations.
  EXPECT_NEAR(static_cast<double>(run->crash_events), expected,
              4 * std::sqrt(expected));
  EXPECT_EQ(run->tracked_hosts, 20000u);
}

TEST(SimTest, SeedsReproduce) {
  Scenario s = Base(5000);
  s.mutable_behavior()->set_crash_per_host_hour(0.01);
  s.mutable_behavior()->set_offline_fraction(0.05);
  s.mutable_effect()->set_hazard_multiplier(5);
  SimOptions o;
  o.seed = 11;
  auto a = Simulate(s, DetectionPlan(), o);
  auto b = Simulate(s, DetectionPlan(), o);
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ(a->crash_events, b->crash_events);
  EXPECT_EQ(a->halted, b->halted);
  EXPECT_EQ(a->time_to_halt_s, b->time_to_halt_s);
  EXPECT_EQ(a->exposed_total, b->exposed_total);
  EXPECT_EQ(a->hurt_total, b->hurt_total);
  o.seed = 12;
  auto c = Simulate(s, DetectionPlan(), o);
  ASSERT_OK(c);
  EXPECT_NE(a->crash_events, c->crash_events);
}

// A network outage silences 60 % of all hosts for 20 minutes, whatever they
// run, while a good update is in its early stages: no halt.
TEST(SimTest, OutagesSilenceBothArmsAndDoNotHalt) {
  Scenario s = Base(10000);
  s.mutable_behavior()->set_crash_per_host_hour(0.002);
  auto* outage = s.add_outages();
  outage->mutable_start()->set_seconds(300);
  outage->mutable_duration()->set_seconds(1200);
  outage->set_fraction(0.6);
  // Without the plan's relative-risk bound on 50pct: at 10,000 hosts and
  // 0.002 crashes per host-hour it takes hours of baking to bound the crash
  // rate below 2x, and this test is about outages (the 4-hour runs must
  // complete).
  Plan plan = DetectionPlan();
  for (Stage& stage : *plan.mutable_stages()) {
    stage.clear_promote_max_relative_risk();
  }
  int halted = 0;
  uint64_t dropped = 0;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    SimOptions o;
    o.seed = seed;
    auto run = Simulate(s, plan, o);
    ASSERT_OK(run);
    halted += run->halted;
    dropped += run->outage_dropped_events;
    EXPECT_TRUE(run->completed) << run->halt_reason;
  }
  EXPECT_EQ(halted, 0);
  EXPECT_GT(dropped, 100000u);
}

TEST(SimTest, BootLoopHaltsWithAHandfulHurt) {
  Scenario s = Base(50000);
  s.mutable_behavior()->set_offline_fraction(0.05);
  s.mutable_effect()->set_boot_loop(1.0);
  SimOptions o;
  o.seed = 5;
  o.timeline = true;
  auto run = Simulate(s, DetectionPlan(), o);
  ASSERT_OK(run);
  EXPECT_TRUE(run->halted);
  EXPECT_LE(run->hurt_total, 10u);
  EXPECT_LE(run->time_to_halt_s, 300);
  EXPECT_THAT(run->halt_reason, HasSubstr("silent"));
  ASSERT_FALSE(run->timeline.empty());
  EXPECT_EQ(run->timeline.back().state, "halted");
}

TEST(SimTest, BaselinesRunOnTheSameScenario) {
  Scenario s = Base(20000);
  s.mutable_behavior()->set_crash_per_host_hour(0.005);
  s.mutable_effect()->set_hazard_multiplier(10);
  for (Decider d : {Decider::kOracle, Decider::kThresholdRule}) {
    SimOptions o;
    o.decider = d;
    o.seed = 2;
    auto run = Simulate(s, DetectionPlan(), o);
    ASSERT_OK(run);
    if (run->halted) {
      EXPECT_THAT(run->halt_reason,
                  HasSubstr(d == Decider::kOracle ? "oracle" : "threshold"));
    }
  }
}

TEST(SimTest, InvalidScenariosNameTheField) {
  Scenario s = Base(0);
  EXPECT_THAT(Simulate(s, DetectionPlan(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("fleet.hosts: must be > 0")));
  s = Base(10);
  s.mutable_effect()->set_boot_loop(1.5);
  EXPECT_THAT(Simulate(s, DetectionPlan(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("effect.boot_loop: must be in [0, 1]")));
  EXPECT_THAT(RehearsalScenario(Base(10), "meteor"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown preset")));
  auto r = RehearsalScenario(Base(10), "crash-on-apply:0.05");
  ASSERT_OK(r);
  EXPECT_DOUBLE_EQ(r->effect().crash_on_apply(), 0.05);
}

TEST(SimTest, SummaryAggregatesRuns) {
  std::vector<SimRun> runs(4);
  runs[0].halted = true;
  runs[0].time_to_halt_s = 100;
  runs[0].exposed_at_halt = 10;
  runs[0].hurt_total = 4;
  runs[1].halted = true;
  runs[1].false_halt = true;
  runs[1].time_to_halt_s = 300;
  runs[1].exposed_at_halt = 30;
  runs[2].completed = true;
  runs[2].time_to_completion_s = 1000;
  const SimSummary s = Summarize(runs);
  EXPECT_EQ(s.runs, 4u);
  EXPECT_DOUBLE_EQ(s.halted_fraction, 0.5);
  EXPECT_DOUBLE_EQ(s.false_halt_rate, 0.25);
  EXPECT_DOUBLE_EQ(s.hosts_hurt_mean, 1.0);
  EXPECT_DOUBLE_EQ(s.hosts_exposed_at_halt_mean, 20);
  EXPECT_DOUBLE_EQ(s.time_to_halt_s_mean, 200);
  EXPECT_DOUBLE_EQ(s.time_to_completion_s_mean, 1000);
  EXPECT_THAT(SummaryJson(s), HasSubstr("\"false_halt_rate\": 0.25"));
}

}  // namespace
}  // namespace ringfence
