#include "ringfence/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringfence {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::Ge;
using ::testing::SizeIs;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

MixtureTestOptions Options(double margin, double alpha,
                           std::vector<double> relative_risks = {}) {
  MixtureTestOptions options;
  options.margin = margin;
  options.alpha = alpha;
  options.relative_risks = std::move(relative_risks);
  return options;
}

// Share of affected hosts expected in treatment for relative risk `rr`.
double Share(double rr, double n_t, double n_c) {
  return rr * n_t / (rr * n_t + n_c);
}

// The mixture e-value computed the naive way, straight from the definition,
// as an independent check of the log-space implementation.
struct Event {
  bool in_treatment;
  double n_t;
  double n_c;
};
double NaiveMixture(const std::vector<double>& grid, double margin,
                    const std::vector<Event>& events) {
  double sum = 0;
  for (double rr : grid) {
    double lr = 1;
    for (const Event& e : events) {
      const double p0 = Share(1 + margin, e.n_t, e.n_c);
      const double p1 = Share(rr, e.n_t, e.n_c);
      lr *= e.in_treatment ? p1 / p0 : (1 - p1) / (1 - p0);
    }
    sum += lr;
  }
  return sum / grid.size();
}

TEST(DefaultRelativeRiskGridTest, LogSpacedFromAboveTheMarginTo1000) {
  for (double margin : {0.0, 0.2, 1.0}) {
    SCOPED_TRACE(margin);
    const std::vector<double> grid = DefaultRelativeRiskGrid(margin);
    ASSERT_GE(grid.size(), 16u);
    ASSERT_LE(grid.size(), 24u);
    EXPECT_GT(grid.front(), 1 + margin);
    EXPECT_NEAR(grid.front(), 1.25 * (1 + margin), 1e-9);
    EXPECT_DOUBLE_EQ(grid.back(), 1000);
    const double ratio = grid[1] / grid[0];
    EXPECT_GT(ratio, 1);
    for (size_t i = 1; i < grid.size(); ++i) {
      EXPECT_NEAR(grid[i] / grid[i - 1], ratio, 1e-9) << i;
    }
  }
}

TEST(DefaultRelativeRiskGridTest, HugeOrInvalidMarginStillGivesAValidGrid) {
  for (double margin : {900.0, 1e6, -1.0, kNaN}) {
    SCOPED_TRACE(margin);
    const std::vector<double> grid = DefaultRelativeRiskGrid(margin);
    ASSERT_THAT(grid, SizeIs(Ge(16u)));
    const double null_rr = margin >= 0 ? 1 + margin : 1;
    EXPECT_GT(grid.front(), null_rr);
    for (size_t i = 1; i < grid.size(); ++i) {
      EXPECT_GT(grid[i], grid[i - 1]);
      EXPECT_TRUE(std::isfinite(grid[i]));
    }
  }
}

TEST(ConditionalMixtureTest, NoEventsGivesEValueOne) {
  ConditionalMixtureTest test(Options(0.1, 0.05));
  EXPECT_EQ(test.e_value(), 1);
  EXPECT_EQ(test.log_e_value(), 0);
  EXPECT_DOUBLE_EQ(test.threshold(), 20);
  EXPECT_FALSE(test.rejected());
  EXPECT_EQ(test.treatment_events(), 0u);
  EXPECT_EQ(test.control_events(), 0u);
  EXPECT_EQ(test.options().relative_risks, DefaultRelativeRiskGrid(0.1));
}

TEST(ConditionalMixtureTest, ControlEventsReduceEValue) {
  ConditionalMixtureTest test;
  double previous = test.e_value();
  for (int i = 0; i < 50; ++i) {
    test.Observe(/*in_treatment=*/false, 100, 1000 - i);
    EXPECT_LT(test.e_value(), previous) << i;
    EXPECT_GT(test.e_value(), 0) << i;
    previous = test.e_value();
  }
  EXPECT_EQ(test.control_events(), 50u);
  EXPECT_EQ(test.treatment_events(), 0u);
}

TEST(ConditionalMixtureTest, TreatmentEventWithTinyNullShareRaisesEValueALot) {
  // One canary host among 10,000 controls: under H0 an affected host is the
  // canary with probability ~1e-4, so seeing it is strong evidence.
  ConditionalMixtureTest test(Options(/*margin=*/0, /*alpha=*/0.01));
  test.Observe(/*in_treatment=*/true, 1, 10000);
  const std::vector<double>& grid = test.options().relative_risks;
  const double p0 = Share(1, 1, 10000);
  // A mixture is at least its largest component times its weight.
  EXPECT_GE(test.e_value(),
            Share(grid.back(), 1, 10000) / p0 / grid.size() * (1 - 1e-12));
  EXPECT_GT(test.e_value(), test.threshold());
  EXPECT_TRUE(test.rejected());
  EXPECT_EQ(test.treatment_events(), 1u);
}

TEST(ConditionalMixtureTest, MatchesTheProductOfLikelihoodRatios) {
  const std::vector<double> grid = {1.5, 3, 10, 200};
  const double margin = 0.1;
  ConditionalMixtureTest test(Options(margin, /*alpha=*/1e-6, grid));
  std::vector<Event> events;
  // A growing treatment arm against a shrinking control.
  for (int i = 0; i < 40; ++i) {
    events.push_back({i % 3 == 0, 5.0 * (i + 1), 500.0 - i});
  }
  for (size_t i = 0; i < events.size(); ++i) {
    test.Observe(events[i].in_treatment, events[i].n_t, events[i].n_c);
    const std::vector<Event> prefix(events.begin(), events.begin() + i + 1);
    const double expected = NaiveMixture(grid, margin, prefix);
    EXPECT_NEAR(test.e_value(), expected, 1e-10 * expected) << i;
    EXPECT_NEAR(test.log_e_value(), std::log(expected), 1e-10) << i;
  }
}

TEST(ConditionalMixtureTest, IsAMartingaleAtTheNullBoundaryAndDropsBelowIt) {
  const double margin = 0.2;
  ConditionalMixtureTest test(Options(margin, /*alpha=*/0.01));
  // Some history, so the components have different weights.
  for (int i = 0; i < 10; ++i) test.Observe(i % 2 == 0, 50, 200);
  for (double n_t : {1.0, 30.0, 1000.0}) {
    for (double n_c : {1.0, 500.0, 1e5}) {
      SCOPED_TRACE(testing::Message() << n_t << " " << n_c);
      ConditionalMixtureTest if_treatment = test;
      ConditionalMixtureTest if_control = test;
      if_treatment.Observe(true, n_t, n_c);
      if_control.Observe(false, n_t, n_c);
      const double p0 = Share(1 + margin, n_t, n_c);
      const double at_boundary =
          p0 * if_treatment.e_value() + (1 - p0) * if_control.e_value();
      EXPECT_NEAR(at_boundary, test.e_value(), 1e-12 * test.e_value());
      const double q = Share(1, n_t, n_c);  // strictly inside H0
      EXPECT_LT(q * if_treatment.e_value() + (1 - q) * if_control.e_value(),
                test.e_value());
    }
  }
}

TEST(ConditionalMixtureTest, EventsWithoutUncertaintyAreIgnored) {
  ConditionalMixtureTest test;
  const std::vector<Event> uninformative = {
      {false, 0, 100},  {true, 0, 100},     {true, 100, 0},  {false, 100, 0},
      {true, 0, 0},     {false, -1, 5},     {true, -1, 5},   {true, 5, -3},
      {true, kNaN, 5},  {false, 5, kNaN},   {true, kInf, 5}, {false, 5, kInf},
      {true, -kInf, 5}, {false, kNaN, kNaN}};
  for (const Event& e : uninformative) {
    test.Observe(e.in_treatment, e.n_t, e.n_c);
  }
  EXPECT_EQ(test.e_value(), 1);
  EXPECT_EQ(test.log_e_value(), 0);
  EXPECT_EQ(test.treatment_events(), 0u);
  EXPECT_EQ(test.control_events(), 0u);
  EXPECT_FALSE(test.rejected());
}

TEST(ConditionalMixtureTest, StaysFiniteUnderExtremeInputs) {
  const double max = std::numeric_limits<double>::max();
  const double tiny = std::numeric_limits<double>::denorm_min();
  ConditionalMixtureTest test;
  for (double n_t : {tiny, 1e-300, 1.0, 1e300, max}) {
    for (double n_c : {tiny, 1e-300, 1.0, 1e300, max}) {
      for (bool in_treatment : {true, false}) {
        test.Observe(in_treatment, n_t, n_c);
        ASSERT_TRUE(std::isfinite(test.log_e_value())) << n_t << " " << n_c;
        ASSERT_TRUE(std::isfinite(test.e_value())) << n_t << " " << n_c;
      }
    }
  }
  // Overwhelming evidence either way: log e runs far past exp()'s range.
  ConditionalMixtureTest guilty;
  for (int i = 0; i < 2000; ++i) guilty.Observe(true, 1, 1e6);
  EXPECT_GT(guilty.log_e_value(), 1000);
  EXPECT_TRUE(std::isfinite(guilty.log_e_value()));
  EXPECT_EQ(guilty.e_value(), max);
  ConditionalMixtureTest innocent;
  for (int i = 0; i < 20000; ++i) innocent.Observe(false, 1e6, 1);
  EXPECT_LT(innocent.log_e_value(), -1000);
  EXPECT_TRUE(std::isfinite(innocent.log_e_value()));
  EXPECT_GE(innocent.e_value(), 0);
}

TEST(ConditionalMixtureTest, RejectionIsSticky) {
  ConditionalMixtureTest test(Options(/*margin=*/0, /*alpha=*/0.05));
  int steps = 0;
  while (!test.rejected()) {
    ASSERT_LT(++steps, 100);
    test.Observe(true, 100, 10000);
  }
  EXPECT_GE(test.e_value(), test.threshold());
  // Controls pull the e-value back down, but the crossing already happened.
  steps = 0;
  while (test.e_value() >= 1) {
    ASSERT_LT(++steps, 100000);
    test.Observe(false, 100, 10000);
  }
  EXPECT_LT(test.e_value(), test.threshold());
  test.Observe(false, 100, 10000);
  EXPECT_TRUE(test.rejected());
}

TEST(ConditionalMixtureTest, MarginRaisesTheBar) {
  // Treatment hosts fail 1.5x as often as control hosts: 3 of every 5
  // affected hosts are in treatment with equal arms.
  ConditionalMixtureTest strict(Options(/*margin=*/0, /*alpha=*/0.01));
  ConditionalMixtureTest tolerant(Options(/*margin=*/0.5, /*alpha=*/0.01));
  for (int i = 0; i < 1000; ++i) {
    const bool in_treatment = i % 5 < 3;
    strict.Observe(in_treatment, 100000, 100000);
    tolerant.Observe(in_treatment, 100000, 100000);
  }
  EXPECT_TRUE(strict.rejected());
  EXPECT_FALSE(tolerant.rejected());
  EXPECT_LT(tolerant.e_value(), 1);
}

TEST(ConditionalMixtureTest, DropsRelativeRisksThatAreNotAlternatives) {
  ConditionalMixtureTest test(Options(
      /*margin=*/0.2, /*alpha=*/0.01,
      {0.5, 1.0, 1.2, kNaN, kInf, -3, 3.0, 1.3}));
  EXPECT_THAT(test.options().relative_risks, ElementsAre(3.0, 1.3));
  ConditionalMixtureTest none_valid(
      Options(/*margin=*/0.2, /*alpha=*/0.01, {0.5, 1.2}));
  EXPECT_THAT(none_valid.options().relative_risks,
              ElementsAreArray(DefaultRelativeRiskGrid(0.2)));
}

TEST(ConditionalMixtureTest, SinglePointMixtureIsWaldsLikelihoodRatio) {
  const double rr = 2.5;
  const double margin = 0.1;
  ConditionalMixtureTest mixture(Options(margin, /*alpha=*/1e-9, {rr}));
  ConditionalWaldSprt wald(rr, margin, 1e-9, 1e-9);
  for (int i = 0; i < 60; ++i) {
    const bool in_treatment = i % 4 == 0;
    mixture.Observe(in_treatment, 20 + i, 300 - i);
    wald.Observe(in_treatment, 20 + i, 300 - i);
    EXPECT_NEAR(mixture.log_e_value(), wald.llr(), 1e-12) << i;
  }
  EXPECT_NE(wald.llr(), 0);
}

TEST(ConditionalWaldSprtTest, RejectsAtWaldsUpperThresholdAndStops) {
  const double alpha = 0.01, beta = 0.1;
  ConditionalWaldSprt sprt(/*relative_risk=*/10, /*margin=*/0, alpha, beta);
  const double upper = std::log((1 - beta) / alpha);
  double llr_before = 0;
  while (sprt.outcome() == SprtOutcome::kContinue) {
    ASSERT_LT(sprt.llr(), upper);
    llr_before = sprt.llr();
    sprt.Observe(true, 10, 1000);
  }
  EXPECT_EQ(sprt.outcome(), SprtOutcome::kRejectNull);
  EXPECT_GE(sprt.llr(), upper);
  EXPECT_GT(sprt.llr(), llr_before);
  const double final_llr = sprt.llr();
  EXPECT_EQ(sprt.Observe(false, 10, 1000), SprtOutcome::kRejectNull);
  EXPECT_EQ(sprt.llr(), final_llr);
}

TEST(ConditionalWaldSprtTest, AcceptsAtWaldsLowerThresholdAndStops) {
  const double alpha = 0.01, beta = 0.1;
  ConditionalWaldSprt sprt(/*relative_risk=*/2, /*margin=*/0.1, alpha, beta);
  const double lower = std::log(beta / (1 - alpha));
  int steps = 0;
  while (sprt.outcome() == SprtOutcome::kContinue) {
    ASSERT_LT(++steps, 1000);
    ASSERT_GT(sprt.llr(), lower);
    // Ignored: no control host at risk.
    EXPECT_EQ(sprt.Observe(true, 500, 0), SprtOutcome::kContinue);
    sprt.Observe(false, 500, 500);
  }
  EXPECT_EQ(sprt.outcome(), SprtOutcome::kAcceptNull);
  EXPECT_LE(sprt.llr(), lower);
  const double final_llr = sprt.llr();
  EXPECT_EQ(sprt.Observe(true, 1, 1e6), SprtOutcome::kAcceptNull);
  EXPECT_EQ(sprt.llr(), final_llr);
}

TEST(PoissonWaldSprtTest, LlrIsEventsTimesLogRrMinusExcessExpectedEvents) {
  const double rr = 2, baseline = 1e-3;
  PoissonWaldSprt sprt(rr, baseline, 1e-6, 1e-6);
  EXPECT_EQ(sprt.Observe(3, 500), SprtOutcome::kContinue);
  EXPECT_NEAR(sprt.llr(), 3 * std::log(rr) - (rr - 1) * baseline * 500, 1e-12);
  sprt.Observe(0, 1000);
  sprt.Observe(2, 0);
  EXPECT_NEAR(sprt.llr(), 5 * std::log(rr) - (rr - 1) * baseline * 1500, 1e-12);
  // Invalid exposure is ignored, events included.
  const double llr = sprt.llr();
  sprt.Observe(7, -1);
  sprt.Observe(7, kNaN);
  sprt.Observe(7, kInf);
  EXPECT_EQ(sprt.llr(), llr);
}

TEST(PoissonWaldSprtTest, DecidesAtWaldsThresholds) {
  const double alpha = 0.05, beta = 0.2;
  PoissonWaldSprt quiet(3, 1e-2, alpha, beta);
  EXPECT_EQ(quiet.Observe(0, 1000), SprtOutcome::kAcceptNull);
  EXPECT_LE(quiet.llr(), std::log(beta / (1 - alpha)));
  EXPECT_EQ(quiet.Observe(100, 0), SprtOutcome::kAcceptNull);

  PoissonWaldSprt noisy(3, 1e-2, alpha, beta);
  EXPECT_EQ(noisy.Observe(1, 10), SprtOutcome::kContinue);
  EXPECT_EQ(noisy.Observe(5, 10), SprtOutcome::kRejectNull);
  EXPECT_GE(noisy.llr(), std::log((1 - beta) / alpha));
}

// ---------------------------------------------------------------------------
// Monte Carlo: a growing-exposure rollout.
//
// 10,000 control hosts; the treatment arm doubles every 24 hours from 5 hosts
// to 5,120 and then stays there. Every host on the previous release becomes
// affected at rate kBaseline per host-hour, every treatment host at
// RR * kBaseline, and leaves the risk set when affected. Events are simulated
// exactly (competing exponential clocks) and every test is evaluated after
// every affected host, up to an event budget.
// ---------------------------------------------------------------------------

constexpr double kControlHosts = 10000;
constexpr double kFirstStageHosts = 5;
constexpr int kStages = 11;  // 5, 10, 20, ..., 5120 treatment hosts.
constexpr double kStageHours = 24;
constexpr double kBaseline = 1e-4;  // affected hosts per host-hour
// The oracles are run as (nearly) power-one tests, like the mixture.
constexpr double kOracleBeta = 1e-3;

// The <random> distributions are implementation-defined; deriving the draws
// from mt19937_64's (standardized) output keeps every run reproducible on
// every standard library. Uniform on (0, 1].
double Uniform(std::mt19937_64& rng) {
  return static_cast<double>((rng() >> 11) + 1) * 0x1.0p-53;
}

struct Scenario {
  double true_rr;
  double margin;
  double alpha;
  int runs;
  int event_budget;
  uint64_t seed;
};

struct Detection {
  bool detected = false;
  int events = 0;            // affected hosts, both arms, at detection
  int treatment_events = 0;  // affected treatment hosts at detection
  double hours = 0;
};

struct RolloutRun {
  Detection mixture;
  Detection oracle;   // ConditionalWaldSprt knowing the true RR
  Detection poisson;  // PoissonWaldSprt knowing the true RR and baseline
};

void MarkDetected(Detection& d, int events, int treatment_events,
                  double hours) {
  if (d.detected) return;
  d = {true, events, treatment_events, hours};
}

RolloutRun SimulateRollout(const Scenario& s, std::mt19937_64& rng) {
  ConditionalMixtureTest mixture(Options(s.margin, s.alpha));
  // The oracles need an alternative above the null; under the null they test
  // RR = 2 (only the mixture's false halts are checked there).
  const double oracle_rr = s.true_rr > 1 + s.margin ? s.true_rr : 2;
  ConditionalWaldSprt oracle(oracle_rr, s.margin, s.alpha, kOracleBeta);
  PoissonWaldSprt poisson(oracle_rr, kBaseline, s.alpha, kOracleBeta);

  RolloutRun run;
  double hours = 0;
  int stage = 0;
  double stage_hosts = kFirstStageHosts;
  double n_t = kFirstStageHosts, n_c = kControlHosts;
  double exposure = 0;  // treatment host-hours not yet given to `poisson`
  int events = 0, treatment_events = 0;
  while (events < s.event_budget &&
         !(mixture.rejected() && oracle.outcome() != SprtOutcome::kContinue &&
           poisson.outcome() != SprtOutcome::kContinue)) {
    const double stage_end =
        stage + 1 < kStages ? (stage + 1) * kStageHours : kInf;
    const double weighted_t = s.true_rr * n_t;
    const double dt =
        -std::log(Uniform(rng)) / (kBaseline * (weighted_t + n_c));
    if (hours + dt >= stage_end) {
      // Exponential clocks are memoryless: restart them at the stage change.
      exposure += n_t * (stage_end - hours);
      hours = stage_end;
      ++stage;
      n_t += stage_hosts;  // the arm doubles; new hosts are at risk
      stage_hosts *= 2;
      continue;
    }
    hours += dt;
    exposure += n_t * dt;
    const bool in_treatment = Uniform(rng) * (weighted_t + n_c) <= weighted_t;
    ++events;
    treatment_events += in_treatment;
    mixture.Observe(in_treatment, n_t, n_c);
    if (mixture.rejected()) {
      MarkDetected(run.mixture, events, treatment_events, hours);
    }
    if (oracle.Observe(in_treatment, n_t, n_c) == SprtOutcome::kRejectNull) {
      MarkDetected(run.oracle, events, treatment_events, hours);
    }
    if (poisson.Observe(in_treatment ? 1 : 0, exposure) ==
        SprtOutcome::kRejectNull) {
      MarkDetected(run.poisson, events, treatment_events, hours);
    }
    exposure = 0;
    (in_treatment ? n_t : n_c) -= 1;
  }
  return run;
}

struct Summary {
  int runs = 0;
  int detected = 0;
  // Means over the runs that detected within the budget.
  double mean_events = 0;
  double mean_treatment_events = 0;
  double mean_hours = 0;
  // Events to detection of every run, sorted; budget + 1 if none.
  std::vector<int> events;

  double rate() const { return static_cast<double>(detected) / runs; }
  // The detection rate had the budget been `budget` events.
  double RateWithin(int budget) const {
    return static_cast<double>(
               std::upper_bound(events.begin(), events.end(), budget) -
               events.begin()) /
           runs;
  }
  int Quantile(double q) const {
    return events[static_cast<size_t>(q * (events.size() - 1))];
  }
  // Standard error of rate() if the true rate were `p`.
  double StandardError(double p) const { return std::sqrt(p * (1 - p) / runs); }
};

Summary Summarize(const std::vector<RolloutRun>& runs,
                  Detection RolloutRun::*which, int budget) {
  Summary s;
  s.runs = static_cast<int>(runs.size());
  for (const RolloutRun& run : runs) {
    const Detection& d = run.*which;
    s.events.push_back(d.detected ? d.events : budget + 1);
    if (!d.detected) continue;
    ++s.detected;
    s.mean_events += d.events;
    s.mean_treatment_events += d.treatment_events;
    s.mean_hours += d.hours;
  }
  std::sort(s.events.begin(), s.events.end());
  if (s.detected > 0) {
    s.mean_events /= s.detected;
    s.mean_treatment_events /= s.detected;
    s.mean_hours /= s.detected;
  }
  return s;
}

std::vector<RolloutRun> SimulateMany(const Scenario& s) {
  std::mt19937_64 rng(s.seed);
  std::vector<RolloutRun> runs;
  runs.reserve(s.runs);
  for (int i = 0; i < s.runs; ++i) runs.push_back(SimulateRollout(s, rng));
  return runs;
}

// Prints to the test log and records in the XML report.
void Report(const std::string& name, const Summary& s) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(4) << "rate=" << s.rate() << " ("
      << s.detected << "/" << s.runs << " runs)" << std::setprecision(1)
      << " mean_events=" << s.mean_events
      << " mean_treatment_events=" << s.mean_treatment_events
      << " mean_hours=" << s.mean_hours << " median_events=" << s.Quantile(0.5)
      << " p90_events=" << s.Quantile(0.9);
  std::cout << "[ stats    ] " << name << ": " << out.str() << std::endl;
  ::testing::Test::RecordProperty(name, out.str());
}

TEST(MixtureMonteCarloTest, FalseHaltRateUnderNoEffectIsAtMostAlpha) {
  const Scenario s = {/*true_rr=*/1,        /*margin=*/0,
                      /*alpha=*/0.05,       /*runs=*/2000,
                      /*event_budget=*/500, /*seed=*/0x5eed0001};
  const std::vector<RolloutRun> runs = SimulateMany(s);
  const Summary mixture = Summarize(runs, &RolloutRun::mixture, s.event_budget);
  const Summary poisson = Summarize(runs, &RolloutRun::poisson, s.event_budget);
  Report("null_rr1_mixture_false_halts", mixture);
  Report("null_rr1_poisson_false_halts", poisson);
  EXPECT_LE(mixture.rate(), s.alpha + 3 * mixture.StandardError(s.alpha));
  EXPECT_LE(poisson.rate(), s.alpha + 3 * poisson.StandardError(s.alpha));
}

TEST(MixtureMonteCarloTest, FalseHaltRateAtTheMarginIsAtMostAlpha) {
  // The hardest null: treatment is exactly (1 + margin) times as risky.
  const Scenario s = {/*true_rr=*/1.2,      /*margin=*/0.2,
                      /*alpha=*/0.05,       /*runs=*/2000,
                      /*event_budget=*/500, /*seed=*/0x5eed0002};
  const Summary mixture =
      Summarize(SimulateMany(s), &RolloutRun::mixture, s.event_budget);
  Report("null_rr1.2_margin0.2_mixture_false_halts", mixture);
  EXPECT_LE(mixture.rate(), s.alpha + 3 * mixture.StandardError(s.alpha));
}

// The detection tests simulate with a budget large enough that (nearly)
// every run detects, so the means are not biased towards easy runs, and
// check the detection rate at a smaller, stated budget.

TEST(MixtureMonteCarloTest, DetectsATenfoldRiskAsFastAsTheOracle) {
  const Scenario s = {/*true_rr=*/10,       /*margin=*/0,
                      /*alpha=*/0.01,       /*runs=*/2000,
                      /*event_budget=*/500, /*seed=*/0x5eed0003};
  const std::vector<RolloutRun> runs = SimulateMany(s);
  const Summary mixture = Summarize(runs, &RolloutRun::mixture, s.event_budget);
  const Summary oracle = Summarize(runs, &RolloutRun::oracle, s.event_budget);
  Report("rr10_mixture_detection", mixture);
  Report("rr10_oracle_sprt_detection", oracle);
  ASSERT_GE(mixture.rate(), 0.99);
  ASSERT_GE(oracle.rate(), 0.99);
  // Detection waits for the canary to grow, which no test can speed up.
  std::cout << "[ stats    ] rr10_mixture_detection_within_200_events: "
            << mixture.RateWithin(200) << std::endl;
  ::testing::Test::RecordProperty("rr10_mixture_detection_within_200_events",
                                  std::to_string(mixture.RateWithin(200)));
  EXPECT_GE(mixture.RateWithin(200), 0.9);
  // Measured: 1.03x the oracle's affected hosts, 1.2x its affected treatment
  // hosts (the mixture spends ~log(20) nats on not knowing the risk).
  EXPECT_LE(mixture.mean_events, 1.3 * oracle.mean_events);
  EXPECT_LE(mixture.mean_treatment_events, 2 * oracle.mean_treatment_events);
}

TEST(MixtureMonteCarloTest, DetectsADoubledRiskNearlyAsFastAsTheOracle) {
  const Scenario s = {/*true_rr=*/2,         /*margin=*/0,
                      /*alpha=*/0.01,        /*runs=*/2000,
                      /*event_budget=*/1000, /*seed=*/0x5eed0004};
  const std::vector<RolloutRun> runs = SimulateMany(s);
  const Summary mixture = Summarize(runs, &RolloutRun::mixture, s.event_budget);
  const Summary oracle = Summarize(runs, &RolloutRun::oracle, s.event_budget);
  Report("rr2_mixture_detection", mixture);
  Report("rr2_oracle_sprt_detection", oracle);
  ASSERT_GE(mixture.rate(), 0.99);
  ASSERT_GE(oracle.rate(), 0.99);
  // The first ~265 affected hosts (~240 of them control) arrive before the
  // arm reaches its final 5,120 hosts; 450 leaves ~185 at full size.
  std::cout << "[ stats    ] rr2_mixture_detection_within_450_events: "
            << mixture.RateWithin(450) << std::endl;
  ::testing::Test::RecordProperty("rr2_mixture_detection_within_450_events",
                                  std::to_string(mixture.RateWithin(450)));
  EXPECT_GE(mixture.RateWithin(450), 0.8);
  // Measured: 1.12x the oracle's affected hosts, 1.5x its affected treatment
  // hosts.
  EXPECT_LE(mixture.mean_events, 1.3 * oracle.mean_events);
  EXPECT_LE(mixture.mean_treatment_events, 2 * oracle.mean_treatment_events);
}

TEST(PoissonWaldSprtMonteCarloTest, DetectsADoubledRiskWithKnownBaseline) {
  const Scenario s = {/*true_rr=*/2,         /*margin=*/0,
                      /*alpha=*/0.01,        /*runs=*/2000,
                      /*event_budget=*/1000, /*seed=*/0x5eed0005};
  const std::vector<RolloutRun> runs = SimulateMany(s);
  const Summary poisson = Summarize(runs, &RolloutRun::poisson, s.event_budget);
  const Summary mixture = Summarize(runs, &RolloutRun::mixture, s.event_budget);
  Report("rr2_poisson_sprt_detection", poisson);
  Report("rr2_mixture_detection_same_runs", mixture);
  // Wald: power ~ 1 - beta when the horizon is long enough.
  EXPECT_GE(poisson.rate(), 0.9);
  // Knowing the baseline makes control events unnecessary.
  EXPECT_LE(poisson.mean_treatment_events, mixture.mean_treatment_events);
}

}  // namespace
}  // namespace ringfence

namespace ringfence {
namespace {

// Hosts that became affected at one instant are observed without checking
// the threshold in between: a crossing that the rest of the instant takes
// back does not latch; Settle() checks the value after all of them.
TEST(ConditionalMixtureTest, DeferredObservationsAreCheckedWhenSettled) {
  MixtureTestOptions o;
  o.alpha = 0.01;
  ConditionalMixtureTest eager(o), deferred(o);
  for (int i = 0; i < 2; ++i) {  // 2 of 10 treatment hosts, 2000 in control
    eager.Observe(true, 10 - i, 2000);
    deferred.ObserveDeferred(true, 10 - i, 2000);
  }
  EXPECT_TRUE(eager.rejected());
  EXPECT_GE(deferred.e_value(), deferred.threshold());
  EXPECT_FALSE(deferred.rejected());  // not settled yet
  for (int i = 0; i < 1000; ++i) {
    eager.Observe(false, 8, 2000 - i);
    deferred.ObserveDeferred(false, 8, 2000 - i);
  }
  deferred.Settle();
  EXPECT_LT(deferred.e_value(), 1);
  EXPECT_FALSE(deferred.rejected());
  EXPECT_TRUE(eager.rejected());  // the transient latched
  // A crossing that stands at the end of the instant does latch.
  ConditionalMixtureTest fresh(o);
  for (int i = 0; i < 3; ++i) fresh.ObserveDeferred(true, 10 - i, 2000);
  EXPECT_FALSE(fresh.rejected());
  fresh.Settle();
  EXPECT_TRUE(fresh.rejected());
}

TEST(ConditionalMixtureTestCheckpoint, RestoreContinuesTheEvidence) {
  MixtureTestOptions o;
  o.alpha = 0.01;
  ConditionalMixtureTest original(o);
  for (int i = 0; i < 5; ++i) original.Observe(true, 10, 1000);
  original.Observe(false, 10, 1000);
  ConditionalMixtureTest restored(o);
  ASSERT_TRUE(restored.Restore(original.log_likelihood_ratios(),
                               original.rejected(), original.treatment_events(),
                               original.control_events()));
  EXPECT_DOUBLE_EQ(restored.log_e_value(), original.log_e_value());
  EXPECT_EQ(restored.rejected(), original.rejected());
  original.Observe(true, 10, 1000);
  restored.Observe(true, 10, 1000);
  EXPECT_DOUBLE_EQ(restored.log_e_value(), original.log_e_value());
  // A checkpoint from another grid is refused.
  ConditionalMixtureTest other(o);
  EXPECT_FALSE(other.Restore({0.0, 1.0}, false, 0, 0));
  std::vector<double> bad = original.log_likelihood_ratios();
  bad[0] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(other.Restore(bad, false, 0, 0));
  EXPECT_DOUBLE_EQ(other.log_e_value(),
                   ConditionalMixtureTest(o).log_e_value());
}

// P(X <= k) for X ~ Binomial(n, p), the naive way (independent of gate.cc).
double NaiveBinomialCdf(int k, int n, double p) {
  double sum = 0;
  for (int x = 0; x <= k; ++x) {
    sum += std::exp(std::lgamma(n + 1.0) - std::lgamma(x + 1.0) -
                    std::lgamma(n - x + 1.0) + x * std::log(p) +
                    (n - x) * std::log1p(-p));
  }
  return sum;
}

// The Poisson mixture e-value: the grid's mean of theta^k exp(-(theta - 1)
// mu); every event is evidence when nothing is expected.
TEST(PoissonMixtureLogETest, IsTheMixtureOfPoissonLikelihoodRatios) {
  const std::vector<double> grid = DefaultRelativeRiskGrid(0.0);
  for (const auto& [k, mu] : std::vector<std::pair<uint64_t, double>>{
           {0, 0.0}, {3, 0.0}, {3, 0.14}, {12, 3.8}, {47, 28.0}, {0, 5.0}}) {
    double sum = 0;
    for (double theta : grid) {
      sum +=
          std::pow(theta, static_cast<double>(k)) * std::exp(-(theta - 1) * mu);
    }
    EXPECT_NEAR(PoissonMixtureLogE(k, mu), std::log(sum / grid.size()), 1e-9)
        << k << " events, " << mu << " expected";
  }
  // No events: evidence for H0 (below 1); a modest excess over a large
  // expectation is weak evidence, a few events over almost nothing strong.
  EXPECT_LT(PoissonMixtureLogE(0, 5), 0);
  EXPECT_LT(PoissonMixtureLogE(47, 28), std::log(1000.0));
  EXPECT_GT(PoissonMixtureLogE(3, 0.02), std::log(1000.0));
  // Huge counts stay finite.
  EXPECT_TRUE(std::isfinite(PoissonMixtureLogE(1000000, 10)));
}

// Under H0 the e-value of a Poisson count, looked at after every event, ever
// reaches 1 / alpha in at most ~alpha of the runs (Ville).
TEST(PoissonMixtureLogETest, ContinuousMonitoringKeepsItsLevel) {
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> gap(1.0);
  const int kRuns = 20000;
  int crossed = 0;
  for (int run = 0; run < kRuns; ++run) {
    double mu = 0;
    for (uint64_t k = 1;; ++k) {
      mu += gap(rng);  // the compensator at the k-th event
      if (mu > 30) break;
      if (PoissonMixtureLogE(k, mu) >= std::log(100.0)) {
        ++crossed;
        break;
      }
    }
  }
  EXPECT_LE(crossed, kRuns / 100);
}

TEST(RelativeRiskUpperBoundTest, IsTheClopperPearsonBoundSolvedForTheRatio) {
  struct Case {
    int x, y;
    double ht, hc;
  };
  for (const Case& c :
       {Case{50, 50, 1000, 1000}, Case{100, 50, 1000, 1000},
        Case{3, 40, 100, 2000}, Case{0, 12, 500, 500}, Case{1, 1, 300, 900}}) {
    const double alpha = 0.01;
    const double rr = RelativeRiskUpperBound(c.x, c.ht, c.y, c.hc, alpha);
    ASSERT_TRUE(std::isfinite(rr)) << c.x << " vs " << c.y;
    // At the bound, the treatment's share of the affected hosts is just
    // improbably low: P(X <= x) = alpha.
    const double share = rr * c.ht / (rr * c.ht + c.hc);
    EXPECT_NEAR(NaiveBinomialCdf(c.x, c.x + c.y, share), alpha, 1e-6)
        << c.x << " vs " << c.y;
    // Above the point estimate.
    if (c.y > 0) {
      EXPECT_GT(rr, (c.x / c.ht) / (c.y / c.hc));
    }
  }
  // Equal rates, 100 affected hosts in all: the ratio is bounded near 1.6;
  // twice the rate: above 2.
  EXPECT_NEAR(RelativeRiskUpperBound(50, 1000, 50, 1000, 0.01), 1.6, 0.05);
  EXPECT_GT(RelativeRiskUpperBound(100, 1000, 50, 1000, 0.01), 2.0);
  // More data, tighter bound.
  EXPECT_LT(RelativeRiskUpperBound(500, 10000, 500, 10000, 0.01),
            RelativeRiskUpperBound(50, 1000, 50, 1000, 0.01));
  // Nothing affected: 0; nothing known: infinity.
  EXPECT_EQ(RelativeRiskUpperBound(0, 100, 0, 100, 0.01), 0);
  EXPECT_TRUE(std::isinf(RelativeRiskUpperBound(4, 100, 0, 100, 0.01)));
  EXPECT_TRUE(std::isinf(RelativeRiskUpperBound(1, 0, 1, 100, 0.01)));
  EXPECT_TRUE(std::isinf(RelativeRiskUpperBound(1, 100, 1, 0, 0.01)));
}

}  // namespace
}  // namespace ringfence
