// Tests of the fleet simulator itself: its ground truth matches the
// scenario, seeds are independent and replay exactly, harm is counted to the
// horizon, the deciders share one exposure path, and the oracle is a real
// test (its false halts are measured, and it knows targeting and latency).
//
// They avoid depending on the gate's exact outcomes (the gate evolves): the
// instrument is checked with the oracle and threshold rule, or with
// scenarios where no rule can trip.
//
// Statistical checks use fixed seeds (ctest is deterministic) and tolerances
// from the binomial. The long versions are DISABLED_ tests:
//   build/bin/sim_test --gtest_also_run_disabled_tests
//       --gtest_filter='*DISABLED_*'
#include "ringfence/sim.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/sim_command.h"
#include "sim/fleet.h"
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

// Two stages (10 %, 100 %) with short bakes: completes in about 20 minutes.
Plan FastPlan() {
  Plan plan;
  EXPECT_OK(ParseTextOrJson(R"pb(
                              name: "fast"
                              policy { alpha: 0.01 min_exposed_hosts: 1 }
                              stages {
                                name: "ten"
                                audience { percent: 10 }
                                bake_time { seconds: 600 }
                                pacing { initial_hosts: 1000 }
                              }
                              stages {
                                name: "all"
                                audience { percent: 100 }
                                bake_time { seconds: 600 }
                                pacing { initial_hosts: 100000 }
                              }
                            )pb",
                            &plan));
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

// Everything of a run except its wall time.
std::string Fingerprint(const SimRun& r) {
  SimRun copy = r;
  copy.wall_seconds = 0;
  std::string out = RunJson(copy);
  for (uint32_t h : r.first_exposed) absl::StrAppend(&out, ",", h);
  return out;
}

// The bounds [lo, hi] that Binomial(n, p) stays within but for ~1e-4 of the
// time (normal approximation, 4 standard deviations, at least 1 apart).
std::pair<double, double> BinomialBounds(int n, double p) {
  const double sd = std::sqrt(n * p * (1 - p));
  return {n * p - std::max(1.0, 4 * sd), n * p + std::max(1.0, 4 * sd)};
}

TEST(SimTest, CrashRateMatchesTheScenario) {
  Scenario s = Base(20000);
  s.mutable_behavior()->set_crash_per_host_hour(0.01);
  s.mutable_max_duration()->set_seconds(2 * 3600);
  SimOptions o;
  o.seed = 3;
  o.horizon = absl::ZeroDuration();
  auto run = Simulate(s, DetectionPlan(), o);
  ASSERT_OK(run);
  const double expected = 0.01 * run->online_host_hours;
  ASSERT_GT(expected, 300);
  // Poisson: within 4 standard deviations.
  EXPECT_NEAR(static_cast<double>(run->crash_events), expected,
              4 * std::sqrt(expected));
  EXPECT_EQ(run->tracked_hosts, 20000u);
}

// Hosts whose telemetry lags behind their check-ins say so when they check
// in (telemetry_pending, as ringfence-agent does): a good update is not
// halted as a boot loop (apply_stuck) because check-ins outrun the host's
// own APPLIED and heartbeats. The lag (10 minutes) stays under the silence
// timeout, so nothing else trips either.
TEST(SimTest, HostsThatReportTheirBacklogAreNoBootLoops) {
  Scenario s = Base(5000);
  s.mutable_fleet()->set_dogfood_hosts(50);
  config::v1::SimTelemetry* t = s.mutable_behavior()->mutable_telemetry();
  t->mutable_fixed_lag()->set_seconds(600);
  t->mutable_batch_interval()->set_seconds(120);
  Plan plan = FastPlan();
  plan.mutable_policy()->mutable_silence_timeout()->set_seconds(3600);
  int halts = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.horizon = absl::ZeroDuration();
    auto run = Simulate(s, plan, o);
    ASSERT_OK(run);
    EXPECT_FALSE(run->halted) << "seed " << seed << ": " << run->halt_rule
                              << ": " << run->halt_reason;
    halts += run->halted;
  }
  EXPECT_EQ(halts, 0);
}

TEST(SimTest, ASeedReproducesItsRunExactly) {
  Scenario s = Base(5000);
  s.mutable_behavior()->set_crash_per_host_hour(0.01);
  s.mutable_behavior()->set_offline_fraction(0.05);
  s.mutable_behavior()->mutable_mean_telemetry_delay()->set_seconds(20);
  s.mutable_effect()->set_hazard_multiplier(5);
  s.mutable_horizon()->set_seconds(3600);
  for (Decider d : {Decider::kRingfence, Decider::kOracle}) {
    SimOptions o;
    o.decider = d;
    o.seed = 11;
    auto a = Simulate(s, DetectionPlan(), o);
    auto b = Simulate(s, DetectionPlan(), o);
    ASSERT_OK(a);
    ASSERT_OK(b);
    EXPECT_EQ(Fingerprint(*a), Fingerprint(*b));
    o.seed = 12;
    auto c = Simulate(s, DetectionPlan(), o);
    ASSERT_OK(c);
    EXPECT_NE(Fingerprint(*a), Fingerprint(*c));
  }
}

// The command's --seed-offset replays one run of a multi-seed invocation.
TEST(SimTest, SeedOffsetReplaysOneRunOfTheCommand) {
  const std::string dir = ::testing::TempDir();
  const std::string scenario = dir + "/replay.textproto";
  {
    std::ofstream f(scenario);
    f << "name: \"replay\" fleet { hosts: 3000 }\n"
         "behavior { crash_per_host_hour: 0.02 offline_fraction: 0.02 }\n"
         "effect { hazard_multiplier: 4 } max_duration { seconds: 7200 }\n"
         "horizon { seconds: 3600 }\n";
  }
  auto lines = [](const std::string& path) {
    std::ifstream f(path);
    std::vector<std::string> out;
    for (std::string line; std::getline(f, line);) {
      // Wall time is the one field that may differ.
      out.push_back(line.substr(0, line.find("\"wall_seconds\"")));
    }
    return out;
  };
  SimulateCommand c;
  c.plan_path = SourceDir() + "/bench/plans/detection.textproto";
  c.scenario_path = scenario;
  c.deciders = "ringfence,threshold_rule";
  c.seeds = 3;
  c.json = true;
  c.runs_path = dir + "/all.jsonl";
  std::FILE* devnull = std::fopen("/dev/null", "w");
  ASSERT_OK(RunSimulateCommand(c, devnull, devnull));
  c.seeds = 1;
  c.seed_offset = 1;
  c.runs_path = dir + "/one.jsonl";
  ASSERT_OK(RunSimulateCommand(c, devnull, devnull));
  std::fclose(devnull);
  const auto all = lines(dir + "/all.jsonl"), one = lines(dir + "/one.jsonl");
  ASSERT_EQ(all.size(), 6u);
  ASSERT_EQ(one.size(), 2u);
  EXPECT_THAT(all[2], HasSubstr("\"seed\": 2,"));
  EXPECT_EQ(one[0], all[2]);
  EXPECT_EQ(one[1], all[3]);
  EXPECT_NE(all[0], all[2]);
}

TEST(SimTest, SeedsGiveDifferentStageMembershipsAndPollOrders) {
  Scenario s = Base(20000);
  s.mutable_max_duration()->set_seconds(1200);
  std::set<std::vector<uint64_t>> memberships;
  int sorted = 0;
  const int kSeeds = 8;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.horizon = absl::ZeroDuration();
    auto run = Simulate(s, DetectionPlan(), o);
    ASSERT_OK(run);
    memberships.insert(run->stage_fingerprints);
    ASSERT_GE(run->first_exposed.size(), 5u);
    // The canary's first five hosts: in host-number order only by chance
    // (1/120), if hosts of a heartbeat slot poll in a random order.
    sorted += std::is_sorted(run->first_exposed.begin(),
                             run->first_exposed.begin() + 5);
  }
  EXPECT_EQ(memberships.size(), static_cast<size_t>(kSeeds));
  EXPECT_LE(sorted, 2);
}

// A latent effect that starts after the rollout completed: no host is hurt
// by the end, and harm keeps growing over the horizon at the effect's rate.
TEST(SimTest, HurtKeepsGrowingAfterABadCompletion) {
  Scenario s = Base(3000);
  s.mutable_behavior()->set_crash_per_host_hour(0.001);
  s.mutable_effect()->set_hazard_multiplier(101);  // +0.1 per host-hour
  s.mutable_effect()->mutable_delay()->set_seconds(2 * 3600);
  s.mutable_horizon()->set_seconds(8 * 3600);
  SimOptions o;
  o.decider = Decider::kThresholdRule;
  o.seed = 4;
  auto run = Simulate(s, FastPlan(), o);
  ASSERT_OK(run);
  ASSERT_TRUE(run->completed) << run->halt_reason;
  EXPECT_LT(run->end_s, 3600);
  EXPECT_EQ(run->hurt_at_end, 0u);
  EXPECT_EQ(run->exposed_total, 3000u);
  // Every host runs it from within a minute of the completion (during the
  // post-completion watch, 1 h by default, after which the horizon starts),
  // and is at risk from 2 h after it loaded to the end of the horizon:
  // 1 - exp(-0.1 * (end + 1 h + 8 h - 2 h - up to 1 min)).
  const double end_h = run->end_s / 3600 + 1;
  const double p_hi = 1 - std::exp(-0.1 * (8 + end_h - 2));
  const double p_lo = 1 - std::exp(-0.1 * (8 + end_h - 2 - 1.0 / 60));
  EXPECT_GE(run->hurt_total, BinomialBounds(3000, p_lo).first);
  EXPECT_LE(run->hurt_total, BinomialBounds(3000, p_hi).second);
  // Without a horizon nothing is counted after the end.
  o.horizon = absl::ZeroDuration();
  auto none = Simulate(s, FastPlan(), o);
  ASSERT_OK(none);
  EXPECT_EQ(none->hurt_total, 0u);
}

// After a halt, hosts revert at their next poll: harm stops growing.
TEST(SimTest, HaltedRolloutsStopHurtingAtTheNextPoll) {
  Scenario s = Base(5000);
  s.mutable_behavior()->set_crash_per_host_hour(0.01);
  s.mutable_effect()->set_hazard_multiplier(30);  // +0.29 per host-hour
  SimOptions o;
  o.decider = Decider::kOracle;
  o.seed = 2;
  auto run = Simulate(s, FastPlan(), o);
  ASSERT_OK(run);
  ASSERT_TRUE(run->halted);
  EXPECT_EQ(run->halt_rule, "oracle");
  // At most a minute more on each exposed host: 0.29 / 60 each.
  const double extra = run->exposed_at_halt * 0.29 / 60;
  EXPECT_LE(run->hurt_total,
            run->hurt_at_end + extra + 4 * std::sqrt(extra) + 1);
  // Stalled at the same point instead (no decider halts), it keeps hurting.
  s.mutable_max_duration()->set_seconds(static_cast<int64_t>(run->end_s) + 10);
  o.decider = Decider::kRingfence;
  Plan no_halts = FastPlan();
  for (Stage& st : *no_halts.mutable_stages()) {
    st.mutable_bake_time()->set_seconds(86400);
  }
  o.decider = Decider::kThresholdRule;
  o.threshold.failure_limit = 1000000;
  auto stalled = Simulate(s, no_halts, o);
  ASSERT_OK(stalled);
  EXPECT_EQ(stalled->outcome, SimOutcome::kStalled);
  EXPECT_GT(stalled->hurt_total, stalled->hurt_at_end + 50);
}

// With the same seed the three deciders run the same plan on the same
// exposure path: when nothing can trip, their runs are identical.
TEST(SimTest, DecidersShareTheExposurePath) {
  Scenario s = Base(5000);
  s.mutable_behavior()->set_offline_fraction(0.02);
  SimOptions o;
  o.seed = 7;
  o.timeline = true;
  o.horizon = absl::ZeroDuration();
  std::vector<SimRun> runs;
  for (Decider d :
       {Decider::kRingfence, Decider::kOracle, Decider::kThresholdRule}) {
    o.decider = d;
    auto run = Simulate(s, DetectionPlan(), o);
    ASSERT_OK(run);
    runs.push_back(*run);
  }
  for (const SimRun& r : runs) {
    EXPECT_TRUE(r.completed);
    EXPECT_EQ(r.end_s, runs[0].end_s);
    EXPECT_EQ(r.exposed_total, runs[0].exposed_total);
    EXPECT_EQ(r.first_exposed, runs[0].first_exposed);
    ASSERT_EQ(r.timeline.size(), runs[0].timeline.size());
    for (size_t i = 0; i < r.timeline.size(); ++i) {
      EXPECT_EQ(r.timeline[i].exposed, runs[0].timeline[i].exposed);
      EXPECT_EQ(r.timeline[i].stage, runs[0].timeline[i].stage);
    }
  }
}

// On a good update the oracle tests the detection target (RR = 2) and its
// false halts are a measured rate close to (at most about) its alpha.
TEST(SimTest, OracleFalseHaltsAreMeasuredNearAlpha) {
  Scenario s = Base(1000);
  s.mutable_behavior()->set_crash_per_host_hour(0.6);
  s.mutable_max_duration()->set_seconds(3 * 3600);
  Plan plan = FastPlan();
  plan.mutable_stages(0)->mutable_bake_time()->set_seconds(1800);
  const int kRuns = 300;
  const double alpha = 0.1, beta = 0.1;
  int halts = 0, decided = 0;
  for (int seed = 1; seed <= kRuns; ++seed) {
    SimOptions o;
    o.decider = Decider::kOracle;
    o.seed = seed;
    o.oracle_alpha = alpha;
    o.oracle_beta = beta;
    o.horizon = absl::ZeroDuration();
    auto run = Simulate(s, plan, o);
    ASSERT_OK(run);
    EXPECT_FALSE(run->harmful);
    EXPECT_EQ(run->false_halt, run->halted);
    halts += run->halted;
    decided += run->halted || run->oracle_llr <= std::log(beta / (1 - alpha));
  }
  std::printf("oracle: %d false halts, %d decided of %d\n", halts, decided,
              kRuns);
  // Nearly every run reaches a decision before the rollout completes.
  EXPECT_GE(decided, kRuns * 0.95);
  // Wald: P(false halt) <= alpha / (1 - beta) (= 0.111); overshoot over
  // the boundary makes it smaller, but not by a factor of 4.
  EXPECT_LE(halts, BinomialBounds(kRuns, alpha / (1 - beta)).second);
  EXPECT_GE(halts, BinomialBounds(kRuns, alpha / 4).first);
  EXPECT_GT(halts, 0);
}

// The oracle knows which hosts the effect targets: an update that hurts
// only agent 7.10.2 hosts (30 %) is halted, and only its hosts are hurt.
TEST(SimTest, OracleKnowsTheTargetedSubset) {
  Scenario s = Base(10000);
  auto* v = s.mutable_fleet()->add_agent_versions();
  v->set_value("7.10.2");
  v->set_weight(3);
  v = s.mutable_fleet()->add_agent_versions();
  v->set_value("7.11.0");
  v->set_weight(7);
  s.mutable_behavior()->set_crash_per_host_hour(0.02);
  s.mutable_effect()->set_hazard_multiplier(4);
  s.mutable_effect()->add_agent_versions("7.10.2");
  s.mutable_horizon()->set_seconds(0);
  Plan plan = FastPlan();
  plan.mutable_stages(0)->mutable_bake_time()->set_seconds(4 * 3600);
  int halted = 0;
  for (int seed = 1; seed <= 5; ++seed) {
    SimOptions o;
    o.decider = Decider::kOracle;
    o.seed = seed;
    auto run = Simulate(s, plan, o);
    ASSERT_OK(run);
    EXPECT_TRUE(run->harmful);
    halted += run->halted;
  }
  EXPECT_EQ(halted, 5);
  // An effect on a version no host has: nothing to find, nothing hurt.
  s.mutable_effect()->set_agent_versions(0, "9.9.9");
  SimOptions o;
  o.decider = Decider::kOracle;
  auto run = Simulate(s, plan, o);
  ASSERT_OK(run);
  EXPECT_FALSE(run->harmful);
  EXPECT_EQ(run->hurt_total, 0u);
}

// The oracle knows the effect's latency: an effect that starts 45 minutes
// after load cannot make it accept "no effect" early.
TEST(SimTest, OracleKnowsTheLatency) {
  Scenario s = Base(10000);
  s.mutable_behavior()->set_crash_per_host_hour(0.02);
  s.mutable_effect()->set_hazard_multiplier(10);
  s.mutable_effect()->mutable_delay()->set_seconds(45 * 60);
  s.mutable_horizon()->set_seconds(0);
  Plan plan = FastPlan();
  plan.mutable_stages(0)->mutable_bake_time()->set_seconds(3 * 3600);
  for (int seed = 1; seed <= 3; ++seed) {
    SimOptions o;
    o.decider = Decider::kOracle;
    o.seed = seed;
    auto run = Simulate(s, plan, o);
    ASSERT_OK(run);
    EXPECT_TRUE(run->halted) << seed;
    // Not before the effect could show.
    EXPECT_GT(run->time_to_halt_s, 45 * 60) << seed;
  }
}

TEST(SimTest, ImprovementsAndAbsentTargetsCannotHurt) {
  Scenario s = Base(2000);
  s.mutable_behavior()->set_crash_per_host_hour(0.05);
  s.mutable_effect()->set_hazard_multiplier(0.5);
  EXPECT_TRUE(HasEffect(s));
  EXPECT_FALSE(CanHurt(s));
  // A threshold rule that fails on any crash halts it: a false halt.
  SimOptions o;
  o.decider = Decider::kThresholdRule;
  o.threshold.max_fraction = 0;
  o.threshold.failure_limit = 0;
  o.threshold.min_exposed = 1;
  o.horizon = absl::ZeroDuration();
  auto run = Simulate(s, FastPlan(), o);
  ASSERT_OK(run);
  EXPECT_TRUE(run->halted);
  EXPECT_FALSE(run->harmful);
  EXPECT_TRUE(run->false_halt);
  // A real effect, but only on a pinned tenant's hosts: nobody can get it.
  Scenario pinned = Base(2000);
  auto* t = pinned.mutable_fleet()->add_tenants();
  t->set_name("frozen");
  t->set_weight(1);
  t->set_track(config::v1::TRACK_PINNED);
  t = pinned.mutable_fleet()->add_tenants();
  t->set_name("others");
  t->set_weight(9);
  pinned.mutable_effect()->set_boot_loop(1);
  pinned.mutable_effect()->add_tenants("frozen");
  run = Simulate(pinned, FastPlan(), o);
  ASSERT_OK(run);
  EXPECT_FALSE(run->harmful);
  EXPECT_EQ(run->hurt_total, 0u);
}

TEST(SimTest, OutagesBufferOrDropTelemetryOfTheirRegion) {
  Scenario s = Base(6000);
  auto* r = s.mutable_fleet()->add_regions();
  r->set_value("eu");
  r->set_weight(1);
  r = s.mutable_fleet()->add_regions();
  r->set_value("us");
  r->set_weight(2);
  auto* outage = s.add_outages();
  outage->mutable_start()->set_seconds(300);
  outage->mutable_duration()->set_seconds(600);
  outage->add_regions("eu");
  outage->set_drop_telemetry(true);
  SimOptions o;
  o.decider = Decider::kThresholdRule;
  o.horizon = absl::ZeroDuration();
  auto dropped = Simulate(s, FastPlan(), o);
  ASSERT_OK(dropped);
  // A third of the hosts, 10 heartbeats each (and no other events).
  EXPECT_NEAR(dropped->outage_dropped_events, 2000 * 10, 2000 * 10 * 0.1);
  outage->set_drop_telemetry(false);
  auto buffered = Simulate(s, FastPlan(), o);
  ASSERT_OK(buffered);
  EXPECT_EQ(buffered->outage_dropped_events, 0u);
  EXPECT_TRUE(buffered->completed);
}

TEST(SimTest, RestartsRecreateTheControllerFromTheStore) {
  Scenario s = Base(3000);
  s.mutable_behavior()->set_crash_per_host_hour(0.01);
  auto* restart = s.add_restarts();
  restart->mutable_at()->set_seconds(120);
  restart->set_stage("ten");
  restart = s.add_restarts();
  restart->mutable_at()->set_seconds(60);
  restart->set_stage("all");
  restart->mutable_downtime()->set_seconds(120);
  SimOptions o;
  o.decider = Decider::kThresholdRule;
  o.horizon = absl::ZeroDuration();
  auto run = Simulate(s, FastPlan(), o);
  ASSERT_OK(run);
  EXPECT_EQ(run->restarts, 2);
  EXPECT_TRUE(run->completed);
  EXPECT_EQ(run->exposed_total, 3000u);
  // A restart in a stage that does not exist is refused.
  restart->set_stage("nope");
  EXPECT_THAT(Simulate(s, FastPlan(), o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("restarts[1].stage")));
}

TEST(SimTest, EffectKindsHurtTheirHosts) {
  auto run_with = [](void (*set)(Scenario*)) {
    Scenario s = Base(2000);
    s.mutable_behavior()->set_crash_per_host_hour(0.01);
    set(&s);
    SimOptions o;
    o.decider = Decider::kOracle;
    o.horizon = absl::ZeroDuration();
    return Simulate(s, FastPlan(), o);
  };
  for (auto set : std::vector<void (*)(Scenario*)>{
           [](Scenario* s) { s->mutable_effect()->set_hang_per_host_hour(2); },
           [](Scenario* s) { s->mutable_effect()->set_apply_failure(0.2); },
           [](Scenario* s) { s->mutable_effect()->set_breaks_telemetry(0.2); },
           [](Scenario* s) { s->mutable_effect()->set_boot_loop(0.2); },
           [](Scenario* s) {
             auto* sig = s->mutable_behavior()->add_signals();
             sig->set_name("scan_timeout");
             sig->set_per_host_hour(0.05);
             auto* e = s->mutable_effect()->add_signals();
             e->set_name("scan_timeout");
             e->set_multiplier(20);
           }}) {
    auto run = run_with(set);
    ASSERT_OK(run);
    EXPECT_TRUE(run->harmful);
    EXPECT_TRUE(run->halted);
    EXPECT_GT(run->hurt_total, 0u);
    EXPECT_EQ(run->halt_rule, "oracle");
  }
}

TEST(SimTest, ChronicCrashersAndDogfoodArePlacedAtRandom) {
  Scenario s = Base(10000);
  s.mutable_behavior()->mutable_chronic_crashers()->set_fraction(0.01);
  s.mutable_fleet()->set_dogfood_hosts(50);
  std::set<uint32_t> first_seed;
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    std::mt19937_64 rng(seed);
    const internal::SimHosts h = internal::DrawFleet(s, rng);
    int chronic = 0, dogfood = 0, both = 0;
    std::set<uint32_t> chronic_hosts;
    for (uint32_t i = 0; i < h.n; ++i) {
      const bool c = h.traits[i] & internal::kTraitChronic;
      const bool d = h.traits[i] & internal::kTraitDogfood;
      chronic += c;
      dogfood += d;
      both += c && d;
      if (c) chronic_hosts.insert(i);
    }
    EXPECT_EQ(chronic, 100);
    EXPECT_EQ(dogfood, 50);
    EXPECT_LE(both, 3);  // 0.5 expected
    if (seed == 1) {
      first_seed = chronic_hosts;
    } else {
      EXPECT_NE(first_seed, chronic_hosts);
    }
  }
}

TEST(SimTest, SegmentsCorrelateAttributes) {
  Scenario s = Base(1000);
  auto* dog = s.mutable_fleet()->add_segments();
  dog->set_name("internal");
  dog->set_hosts(40);
  dog->add_labels("ring:dogfood");
  auto* v = dog->add_agent_versions();
  v->set_value("7.12.0");
  v->set_weight(1);
  s.mutable_fleet()->add_segments()->set_name("customers");
  s.mutable_effect()->add_agent_versions("7.11.0");
  std::mt19937_64 rng(1);
  const internal::SimHosts h = internal::DrawFleet(s, rng);
  int affected_dogfood = 0, affected = 0;
  for (uint32_t i = 0; i < h.n; ++i) {
    const bool a = h.traits[i] & internal::kTraitAffected;
    affected += a;
    if (h.segments[h.segment[i]] == "internal") {
      affected_dogfood += a;
      EXPECT_EQ(h.versions[h.version[i]], "7.12.0");
    }
  }
  EXPECT_EQ(affected_dogfood, 0);
  EXPECT_EQ(affected, 960);
}

TEST(SimTest, PlanWarningsNameStagesThatCannotProgress) {
  // 40 hosts: the 0.1 % canary selects 0.04 hosts, fewer than 5.
  std::vector<std::string> w = PlanWarnings(Base(40), DetectionPlan());
  ASSERT_FALSE(w.empty());
  EXPECT_THAT(w[0], HasSubstr("stages[0] (canary)"));
  EXPECT_THAT(w[0], HasSubstr("min_exposed_hosts (5)"));
  // 1 % chronic crashers with 500 initially paced hosts and a breaker at 3.
  Scenario chronic = Base(100000);
  chronic.mutable_behavior()->mutable_chronic_crashers()->set_fraction(0.01);
  Plan plan = DetectionPlan();
  plan.mutable_stages(0)->mutable_audience()->set_percent(0.5);
  plan.mutable_stages(0)->mutable_pacing()->set_initial_hosts(500);
  w = PlanWarnings(chronic, plan);
  // Crashes, and the unclean reboots that come with them (both built-in
  // breakers at 3).
  ASSERT_EQ(w.size(), 2u);
  EXPECT_THAT(w[0], HasSubstr("\"crash\""));
  EXPECT_THAT(w[0], HasSubstr("circuit breaker's 3"));
  EXPECT_THAT(w[1], HasSubstr("\"unclean_reboot\""));
  EXPECT_TRUE(PlanWarnings(Base(100000), DetectionPlan()).empty());
}

TEST(SimTest, InvalidScenariosNameTheField) {
  Scenario s = Base(0);
  EXPECT_THAT(Simulate(s, DetectionPlan(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("fleet.hosts: must be > 0")));
  s = Base(10);
  s.mutable_effect()->set_boot_loop(1.5);
  EXPECT_THAT(ValidateScenario(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("effect.boot_loop: must be in [0, 1]")));
  s = Base(10);
  s.mutable_effect()->mutable_delay()->set_seconds(-1);
  EXPECT_THAT(ValidateScenario(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("effect.delay: must be >= 0")));
  s = Base(10);
  s.mutable_behavior()->mutable_telemetry()->add_event_lags()->set_event(
      "reboot");
  EXPECT_THAT(ValidateScenario(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("behavior.telemetry.event_lags[0].event")));
  s = Base(10);
  s.mutable_fleet()->add_segments()->set_hosts(11);
  EXPECT_THAT(ValidateScenario(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("fleet.segments: fixed-size segments")));
  s = Base(10);
  s.mutable_effect()->add_signals()->set_name("nope");
  EXPECT_THAT(ValidateScenario(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("effect.signals[0].name")));
  EXPECT_THAT(RehearsalScenario(Base(10), "meteor"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown preset")));
  auto r = RehearsalScenario(Base(10), "crash-on-apply:0.05");
  ASSERT_OK(r);
  EXPECT_DOUBLE_EQ(r->effect().crash_on_apply(), 0.05);
}

// Every shipped scenario validates against the plan it is benchmarked with,
// and the scenarios' README lists it.
TEST(SimTest, ShippedScenariosAreValidAndListed) {
  namespace fs = std::filesystem;
  const fs::path dir = SourceDir() + "/bench/scenarios";
  std::ifstream readme(dir / "README.md");
  std::stringstream text;
  text << readme.rdbuf();
  int count = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".textproto") continue;
    ++count;
    const std::string name = entry.path().stem().string();
    Scenario s;
    ASSERT_OK(LoadMessageFile(entry.path().string(), &s)) << name;
    EXPECT_EQ(s.name(), name);
    Plan plan = DetectionPlan();
    const fs::path own = dir / "plans" / (name + ".textproto");
    if (fs::exists(own)) {
      ASSERT_OK(LoadMessageFile(own.string(), &plan));
    }
    EXPECT_OK(ValidateScenarioForPlan(s, plan)) << name;
    EXPECT_THAT(text.str(), HasSubstr(absl::StrCat("`", name, "`"))) << name;
  }
  EXPECT_GE(count, 20);
}

TEST(SimTest, BinomialProportionIsClopperPearson) {
  Proportion p = BinomialProportion(0, 10);
  EXPECT_EQ(p.rate, 0);
  EXPECT_EQ(p.low, 0);
  EXPECT_NEAR(p.high, 0.3085, 1e-3);
  p = BinomialProportion(5, 10);
  EXPECT_NEAR(p.low, 0.1871, 1e-3);
  EXPECT_NEAR(p.high, 0.8129, 1e-3);
  p = BinomialProportion(3, 1000);
  EXPECT_NEAR(p.low, 0.000619, 2e-5);
  EXPECT_NEAR(p.high, 0.008742, 2e-5);
  EXPECT_EQ(BinomialProportion(0, 0).rate, -1);
}

TEST(SimTest, SummaryCountsOutcomesAndCensorsStalls) {
  std::vector<SimRun> runs(5);
  runs[0].outcome = SimOutcome::kHalted;
  runs[0].harmful = true;
  runs[0].halt_rule = "circuit_breaker/silent";
  runs[0].time_to_halt_s = 100;
  runs[0].exposed_at_halt = 10;
  runs[0].hurt_total = 4;
  runs[1].outcome = SimOutcome::kHalted;
  runs[1].false_halt = true;
  runs[1].halt_rule = "control_comparison/crash";
  runs[1].time_to_halt_s = 300;
  runs[1].exposed_at_halt = 30;
  runs[2].outcome = SimOutcome::kCompleted;
  runs[2].end_s = 1000;
  runs[3].outcome = SimOutcome::kStalled;
  runs[3].end_s = 7200;
  runs[4].outcome = SimOutcome::kStalled;
  runs[4].end_s = 7200;
  const SimSummary s = Summarize(runs);
  EXPECT_EQ(s.runs, 5u);
  EXPECT_DOUBLE_EQ(s.halted_fraction, 0.4);
  EXPECT_DOUBLE_EQ(s.completed_fraction, 0.2);
  EXPECT_DOUBLE_EQ(s.stalled_fraction, 0.4);
  EXPECT_EQ(s.harmful_runs, 1u);
  EXPECT_EQ(s.false_halts.k, 1u);
  EXPECT_EQ(s.false_halts.n, 4u);
  EXPECT_DOUBLE_EQ(s.false_halts.rate, 0.25);
  EXPECT_EQ(s.halt_reasons.at("circuit_breaker/silent"), 1u);
  EXPECT_DOUBLE_EQ(s.hurt_mean, 0.8);
  EXPECT_DOUBLE_EQ(s.exposed_at_halt_mean, 20);
  EXPECT_DOUBLE_EQ(s.time_to_halt_s_p50, 100);
  EXPECT_DOUBLE_EQ(s.time_to_halt_s_p95, 300);
  // Completion over the three runs that did not halt; two are stalls.
  EXPECT_DOUBLE_EQ(s.completion_s_p50, 7200);
  EXPECT_TRUE(s.completion_p50_censored);
  EXPECT_THAT(SummaryJson(s), HasSubstr("\"false_halt_rate\": 0.25"));
  EXPECT_THAT(SummaryJson(s), HasSubstr("\"stalled_fraction\": 0.4"));
}

// Long checks (behind --gtest_also_run_disabled_tests).
TEST(SimTest, DISABLED_OracleFalseHaltRateAtThePlansAlpha) {
  Scenario s;
  ASSERT_OK(LoadMessageFile(
      SourceDir() + "/bench/scenarios/good-update.textproto", &s));
  const int kRuns = 2000;
  int halts = 0;
  for (int seed = 1; seed <= kRuns; ++seed) {
    SimOptions o;
    o.decider = Decider::kOracle;
    o.seed = seed;
    o.horizon = absl::ZeroDuration();
    auto run = Simulate(s, DetectionPlan(), o);
    ASSERT_OK(run);
    halts += run->halted;
  }
  const Proportion p = BinomialProportion(halts, kRuns);
  std::printf("oracle false halts: %d of %d (%.3f%%, 95%% CI %.3f..%.3f%%)\n",
              halts, kRuns, 100 * p.rate, 100 * p.low, 100 * p.high);
  EXPECT_LE(p.low, 0.01 / 0.99);
}

}  // namespace
}  // namespace ringfence
