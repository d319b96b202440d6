#include "ringfence/stats.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <vector>

namespace ringfence {
namespace {

// 20 points over log(1000 / 1.25) ~ 6.7 nats puts neighbours ~0.35 nats apart,
// so the true relative risk is always within ~19% of a grid point, while the
// mixture pays only log(20) ~ 3 nats against the best single point.
constexpr int kDefaultGridSize = 20;
// Excess risks below 25% over the margin need thousands of events to detect;
// spending prior weight on them would slow down detection of real breakage.
constexpr double kGridLowFactor = 1.25;
// Covers "every host on the new release fails" against a quiet control.
constexpr double kGridHigh = 1000.0;
// When the margin is so large that (1 + margin) * 1.25 approaches kGridHigh,
// the grid still spans at least this factor so it remains a proper mixture.
constexpr double kGridMinSpan = 4.0;

bool IsFinitePositive(double x) { return std::isfinite(x) && x > 0.0; }

// A margin that is not a finite non-negative number would make the null
// relative risk meaningless (or <= 0, where the logs below blow up).
double SanitizeMargin(double margin) {
  return std::isfinite(margin) && margin >= 0.0 ? margin : 0.0;
}

// Log of the factor by which one conditional Bernoulli trial multiplies the
// likelihood ratio of relative risk `rr` against `null_rr`.
//
// With share = n_t / (null_rr n_t + n_c):
//   (1 - p1) / (1 - p0) = 1 / (1 + (rr - null_rr) share)
//   p1 / p0            = (rr / null_rr) (1 - p1) / (1 - p0)
// Computing the share as 1 / (null_rr + n_c / n_t) keeps it finite and in
// [0, 1 / null_rr] for any finite positive counts (no inf / inf), and log1p
// keeps the tiny per-event drift of a small canary (share ~ 1e-4) accurate.
// REQUIRES: rr > 0, null_rr > 0, both counts finite and > 0.
double LogLikelihoodRatioStep(bool in_treatment, double rr, double null_rr,
                              double treatment_at_risk,
                              double control_at_risk) {
  const double share = 1.0 / (null_rr + control_at_risk / treatment_at_risk);
  // (rr - null_rr) * share >= rr / null_rr - 1 > -1, so log1p is finite.
  const double log_control = -std::log1p((rr - null_rr) * share);
  return in_treatment ? std::log(rr / null_rr) + log_control : log_control;
}

// log(sum(exp(x))) without overflow. REQUIRES: !x.empty().
double LogSumExp(const std::vector<double>& x) {
  const double max = *std::max_element(x.begin(), x.end());
  if (!std::isfinite(max)) return max;
  double sum = 0.0;
  for (double v : x) sum += std::exp(v - max);
  return max + std::log(sum);
}

// Both arms must have hosts at risk for the arm of an affected host to be
// uncertain; otherwise it was certain (or impossible, i.e. inconsistent
// input) under every hypothesis and carries no evidence.
bool IsInformative(double treatment_at_risk, double control_at_risk) {
  return IsFinitePositive(treatment_at_risk) &&
         IsFinitePositive(control_at_risk);
}

// Wald's bounds need 0 < alpha, beta and alpha + beta < 1 so that the lower
// bound is below 0 and the upper above.
bool ValidWaldErrors(double alpha, double beta) {
  return alpha > 0.0 && beta > 0.0 && alpha + beta < 1.0;
}

}  // namespace

std::vector<double> DefaultRelativeRiskGrid(double margin) {
  const double low = (1.0 + SanitizeMargin(margin)) * kGridLowFactor;
  const double high = std::max(kGridHigh, low * kGridMinSpan);
  const double log_step = std::log(high / low) / (kDefaultGridSize - 1);
  std::vector<double> grid;
  grid.reserve(kDefaultGridSize);
  for (int i = 0; i < kDefaultGridSize - 1; ++i) {
    grid.push_back(low * std::exp(log_step * i));
  }
  grid.push_back(high);  // exactly, rather than with rounding error
  return grid;
}

ConditionalMixtureTest::ConditionalMixtureTest(
    const MixtureTestOptions& options)
    : options_(options) {
  assert(options.margin >= 0.0);
  assert(options.alpha > 0.0 && options.alpha < 1.0);
  options_.margin = SanitizeMargin(options_.margin);
  if (!(options_.alpha > 0.0 && options_.alpha < 1.0)) {
    options_.alpha = MixtureTestOptions().alpha;
  }
  // An alternative at or below the null relative risk would have a likelihood
  // ratio with conditional mean > 1 under parts of H0, breaking the
  // supermartingale property of the whole mixture; drop such entries.
  const double null_rr = 1.0 + options_.margin;
  std::vector<double>& grid = options_.relative_risks;
  grid.erase(std::remove_if(grid.begin(), grid.end(),
                            [null_rr](double rr) {
                              return !(std::isfinite(rr) && rr > null_rr);
                            }),
             grid.end());
  if (grid.empty()) grid = DefaultRelativeRiskGrid(options_.margin);
  log_lr_.assign(grid.size(), 0.0);
  log_weight_ = -std::log(static_cast<double>(grid.size()));
  log_threshold_ = -std::log(options_.alpha);
}

bool ConditionalMixtureTest::Restore(const std::vector<double>& log_lr,
                                     bool rejected, uint64_t treatment_events,
                                     uint64_t control_events) {
  if (log_lr.size() != log_lr_.size()) return false;
  for (double v : log_lr) {
    if (!std::isfinite(v)) return false;
  }
  log_lr_ = log_lr;
  log_e_ = log_weight_ + LogSumExp(log_lr_);
  rejected_ = rejected || log_e_ >= log_threshold_;
  treatment_events_ = treatment_events;
  control_events_ = control_events;
  return true;
}

void ConditionalMixtureTest::Observe(bool in_treatment,
                                     double treatment_at_risk,
                                     double control_at_risk) {
  ObserveDeferred(in_treatment, treatment_at_risk, control_at_risk);
  Settle();
}

void ConditionalMixtureTest::Settle() {
  // Ville's bound is on the running supremum, so once crossed it stays
  // crossed even if later control events pull the e-value back down.
  if (log_e_ >= log_threshold_) rejected_ = true;
}

void ConditionalMixtureTest::ObserveDeferred(bool in_treatment,
                                             double treatment_at_risk,
                                             double control_at_risk) {
  if (!IsInformative(treatment_at_risk, control_at_risk)) return;
  const double null_rr = 1.0 + options_.margin;
  for (size_t i = 0; i < log_lr_.size(); ++i) {
    log_lr_[i] +=
        LogLikelihoodRatioStep(in_treatment, options_.relative_risks[i],
                               null_rr, treatment_at_risk, control_at_risk);
  }
  log_e_ = log_weight_ + LogSumExp(log_lr_);
  ++(in_treatment ? treatment_events_ : control_events_);
}

double ConditionalMixtureTest::e_value() const {
  // Overwhelming evidence would overflow exp(); saturate instead of
  // returning inf (log_e_value() stays exact).
  return std::min(std::exp(log_e_), std::numeric_limits<double>::max());
}

double ConditionalMixtureTest::log_e_value() const { return log_e_; }

double ConditionalMixtureTest::threshold() const {
  return 1.0 / options_.alpha;
}

ConditionalWaldSprt::ConditionalWaldSprt(double relative_risk, double margin,
                                         double alpha, double beta)
    : relative_risk_(relative_risk),
      margin_(margin),
      upper_(std::numeric_limits<double>::infinity()),
      lower_(-std::numeric_limits<double>::infinity()) {
  const bool valid =
      std::isfinite(margin) && margin >= 0.0 && std::isfinite(relative_risk) &&
      relative_risk > 1.0 + margin && ValidWaldErrors(alpha, beta);
  assert(valid);
  if (!valid) {
    // Release builds: a test with meaningless parameters must never halt a
    // rollout, nor produce NaN; make every step a no-op that never decides.
    margin_ = 0.0;
    relative_risk_ = 1.0;
    return;
  }
  upper_ = std::log((1.0 - beta) / alpha);
  lower_ = std::log(beta / (1.0 - alpha));
}

SprtOutcome ConditionalWaldSprt::Observe(bool in_treatment,
                                         double treatment_at_risk,
                                         double control_at_risk) {
  // Wald's error bounds are for the test that stops at the first crossing.
  if (outcome_ != SprtOutcome::kContinue) return outcome_;
  if (!IsInformative(treatment_at_risk, control_at_risk)) return outcome_;
  llr_ += LogLikelihoodRatioStep(in_treatment, relative_risk_, 1.0 + margin_,
                                 treatment_at_risk, control_at_risk);
  if (llr_ >= upper_) {
    outcome_ = SprtOutcome::kRejectNull;
  } else if (llr_ <= lower_) {
    outcome_ = SprtOutcome::kAcceptNull;
  }
  return outcome_;
}

PoissonWaldSprt::PoissonWaldSprt(double relative_risk,
                                 double baseline_per_host_hour, double alpha,
                                 double beta)
    : log_rr_(0.0),
      drift_per_host_hour_(0.0),
      upper_(std::numeric_limits<double>::infinity()),
      lower_(-std::numeric_limits<double>::infinity()) {
  const bool valid = IsFinitePositive(relative_risk) &&
                     std::isfinite(baseline_per_host_hour) &&
                     baseline_per_host_hour >= 0.0 &&
                     ValidWaldErrors(alpha, beta);
  assert(valid);
  if (!valid) return;  // Never decides; see ConditionalWaldSprt.
  log_rr_ = std::log(relative_risk);
  drift_per_host_hour_ = (relative_risk - 1.0) * baseline_per_host_hour;
  upper_ = std::log((1.0 - beta) / alpha);
  lower_ = std::log(beta / (1.0 - alpha));
}

SprtOutcome PoissonWaldSprt::Observe(uint64_t events, double host_hours) {
  if (outcome_ != SprtOutcome::kContinue) return outcome_;
  // Counting the events without their exposure would bias the LLR upwards.
  if (!(std::isfinite(host_hours) && host_hours >= 0.0)) return outcome_;
  llr_ +=
      static_cast<double>(events) * log_rr_ - drift_per_host_hour_ * host_hours;
  if (llr_ >= upper_) {
    outcome_ = SprtOutcome::kRejectNull;
  } else if (llr_ <= lower_) {
    outcome_ = SprtOutcome::kAcceptNull;
  }
  return outcome_;
}

namespace {

// P(X <= k) for X ~ Binomial(n, p), summed in log space from k downwards.
double BinomialLowerTail(uint64_t k, uint64_t n, double p) {
  if (k >= n || p <= 0) return 1;
  if (p >= 1) return 0;
  const double lp = std::log(p), lq = std::log1p(-p);
  double log_term = std::lgamma(n + 1.0) - std::lgamma(k + 1.0) -
                    std::lgamma(n - k + 1.0) + k * lp + (n - k) * lq;
  double sum = 0;
  for (uint64_t x = k;; --x) {
    const double term = std::exp(log_term);
    sum += term;
    // Below the mode the terms only shrink going down.
    if (x == 0 || (term < sum * 1e-12 &&
                   static_cast<double>(x) < static_cast<double>(n) * p)) {
      break;
    }
    log_term += std::log(static_cast<double>(x)) -
                std::log(static_cast<double>(n - x + 1)) + lq - lp;
  }
  return std::min(1.0, sum);
}

// The one-sided (1 - alpha) Clopper-Pearson upper bound on the success
// probability after k successes in n trials.
double BinomialUpperBound(uint64_t k, uint64_t n, double alpha) {
  if (k >= n) return 1;
  double lo = static_cast<double>(k) / static_cast<double>(n), hi = 1;
  for (int i = 0; i < 60; ++i) {
    const double mid = (lo + hi) / 2;
    (BinomialLowerTail(k, n, mid) > alpha ? lo : hi) = mid;
  }
  return hi;
}

}  // namespace

double RelativeRiskUpperBound(uint64_t treatment_affected,
                              double treatment_host_hours,
                              uint64_t control_affected,
                              double control_host_hours, double alpha) {
  if (treatment_host_hours <= 0 || control_host_hours <= 0) {
    return std::numeric_limits<double>::infinity();
  }
  const uint64_t n = treatment_affected + control_affected;
  if (n == 0) return 0;
  // Given n affected hosts in all, the treatment's share is binomial with
  // p = RR h_t / (RR h_t + h_c); bound p, then solve for RR.
  const double p = BinomialUpperBound(treatment_affected, n, alpha);
  if (p >= 1) return std::numeric_limits<double>::infinity();
  return p / (1 - p) * control_host_hours / treatment_host_hours;
}

double PoissonMixtureLogE(uint64_t events, double expected) {
  static const std::vector<double> grid = DefaultRelativeRiskGrid(0.0);
  const double mu = expected > 0 ? expected : 0.0;  // NaN: nothing expected
  const double k = static_cast<double>(events);
  std::vector<double> terms;
  terms.reserve(grid.size());
  for (double theta : grid) {
    terms.push_back(k * std::log(theta) - (theta - 1.0) * mu);
  }
  return LogSumExp(terms) - std::log(static_cast<double>(grid.size()));
}

}  // namespace ringfence
