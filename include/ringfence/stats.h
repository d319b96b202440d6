// Sequential tests the gate uses to compare a release's hosts (treatment) with
// hosts still on the previous release (control). Pure computation: no I/O, no
// clock, no locks.
//
// Thread safety: objects are not synchronized; callers serialize access.
//
// (Contract written before the implementation; the math, with sources, is
// explained in the comment block at the top of this file by the implementer.)
//
// ===========================================================================
// The math, and why it is valid (implementer's notes)
// ===========================================================================
//
// Model. A host is "affected" the first time it shows the monitored failure
// (crash loop, failed health check, ...) and then leaves the risk set: only
// distinct hosts count, because repeat failures of one host are not
// independent trials. Host i has hazard h(t) of becoming affected if it runs
// the previous release (control) and theta * h(t) if it runs the new one
// (treatment): proportional hazards with a common baseline h(t) that is
// unknown and may vary arbitrarily in time (diurnal load, an incident that
// hits the whole fleet, ...). theta is the relative risk. The gate tests
//   H0: theta <= theta0 := 1 + margin.
//
// Conditioning on events. Given that *some* at-risk host becomes affected at
// time t, with n_t treatment and n_c control hosts at risk just before t,
// the probability that it is a treatment host is
//   p(theta) = theta n_t / (theta n_t + n_c).
// The unknown baseline h(t) cancels. This is the conditional ("binomial")
// maxSPRT of Kulldorff et al. (2011), who condition on events and use the
// known ratio of matched controls; here the ratio n_t : n_c changes from one
// event to the next as the rollout grows and hosts leave the risk set, so
// trial j is a Bernoulli trial X_j with its own success probability
// p_j(theta). (It is also the partial-likelihood idea of Cox regression,
// one term per event.) The likelihood ratio of theta1 against theta0 after J
// affected hosts is
//   L_J(theta1) = prod_j (p_j(theta1) / p_j(theta0))^X_j
//                        ((1 - p_j(theta1)) / (1 - p_j(theta0)))^(1 - X_j).
//
// Why this is a supermartingale under H0 even though exposure grows. Let
// F_{j-1} be everything known just before trial j: the past events and the
// at-risk counts n_t, n_c at that instant. The counts may depend on the past
// in any way (the gate advancing a stage because the evidence so far looked
// fine, hosts leaving the risk set) but not on the future, so p_j(theta0) is
// known when trial j happens. If the true relative risk is theta, the
// trial's success probability is q = p_j(theta), and the factor f_j that
// trial j contributes to L has conditional mean
//   E[f_j | F_{j-1}] = q p1 / p0 + (1 - q) (1 - p1) / (1 - p0),
// (p1 = p_j(theta1), p0 = p_j(theta0)) which is affine and increasing in q
// because p1 > p0 for theta1 > theta0, and equals 1 at q = p0. Under H0
// theta <= theta0, so q <= p0 and E[f_j | F_{j-1}] <= 1: L_J(theta1) is a
// nonnegative supermartingale with L_0 = 1 for every theta1 > theta0 and
// every theta in H0 at once (a martingale at the boundary theta = theta0).
// Nothing requires the trials to be identically distributed, only that each
// trial's null probability is known at the moment it happens. That is why a
// treatment arm growing from 5 hosts to half the fleet, and a baseline
// hazard that moves, do not invalidate the test, whereas a test on the
// treatment arm alone (PoissonWaldSprt below) needs the baseline.
//
// Mixture. The relative risk of a bad release is unknown, so the e-value is
// the equal-weight mixture E_J = (1/K) sum_k L_J(theta_k) over a grid of K
// relative risks theta_k > theta0 (the method of mixtures of Robbins (1970);
// Wald (1945) already weighted likelihood ratios over composite
// alternatives). A fixed-weight mixture of supermartingales with initial
// value 1 is again one. It is computed in log space (log-sum-exp) so no
// likelihood ratio overflows. Against the best single grid point it loses at
// most log K nats (E_J >= L_J(theta_k) / K); in exchange one test covers
// everything from a 25% excess to a release on which every host crashes.
// The default grid is log-spaced (the likelihood ratio is smooth in
// log theta) from 1.25 (1 + margin), below which detection needs thousands
// of events anyway, to 1000.
//
// Ville's inequality (Ville 1939). A nonnegative supermartingale E with
// E_0 = 1 satisfies P(sup_J E_J >= 1/alpha) <= alpha. So the e-value may be
// looked at after every event, forever, and the rollout stopped at any
// data-dependent time, with false-halt probability <= alpha: "always valid"
// inference in the sense of Johari, Pekelis & Walsh (2017/2022), an
// e-process / test supermartingale in the terminology of Ramdas et al.
// (2023). The bound is on the supremum, hence rejected() is sticky: later
// control events can pull the e-value back below 1/alpha, but the crossing
// has happened. Unlike Kulldorff's maxSPRT (maximum over theta of the
// likelihood ratio), whose critical value has to be simulated for a fixed
// design and a maximum sample size, the mixture needs no calibration: the
// threshold is exactly 1/alpha whatever the exposure schedule and however
// long the test runs. The price is conservatism: the realized false-halt
// rate is usually well below alpha.
//
// ConditionalWaldSprt is Wald's (1945) sequential probability ratio test on
// the same trials for a single known alternative theta1 versus theta0, with
// Wald's thresholds log((1 - beta) / alpha) and log(beta / (1 - alpha)). It
// is the oracle of the benchmarks: the fastest test for that one
// alternative, which the gate cannot use because it does not know theta.
// PoissonWaldSprt treats the treatment events in T host-hours as Poisson
// with mean theta * lambda * T for a *known* baseline lambda; the LLR of
// theta against 1 is k log(theta) - (theta - 1) lambda T. The gate does not
// know lambda (it moves with load and incidents), which is the reason for
// conditioning on events in the first place.
//
// Caveats (when the guarantee does not hold).
// * Common hazard under H0. The test assumes that, absent a release effect,
//   a treatment host and a control host at risk at the same moment are
//   equally likely to become affected. Percent stages assign hosts by a
//   hash of the host id, i.e. randomly with respect to anything that drives
//   the hazard, so the treatment arm is a random sample of the fleet and
//   this holds. (With heterogeneous hosts, strictly: randomization makes
//   the treatment share of the total hazard n_t / (n_t + n_c) on average
//   over assignments; for the one assignment in use it holds approximately,
//   the better the larger the arms and the fewer hosts already affected.)
//   It does NOT hold for non-random stages: a canary pinned to one region,
//   cell or hardware generation, or a fleet whose arms differ in age or
//   load. Restarts caused by the deploy itself change the hazard too; that
//   is arguably an effect of the rollout and is detected as one.
// * n_t and n_c must be the counts at risk just *before* the affected host
//   (it included), taken from state that existed before the event; never
//   count hosts whose assignment was decided after it. Hosts affected
//   simultaneously (same scrape) should be fed in an order that does not
//   depend on their arm, decrementing the risk set in between.
// * A host that leaves the fleet (drained, replaced) must leave the risk
//   set; a host that gets the new release moves from the control to the
//   treatment risk set (unless it is already affected).
//
// Behaviour details of this implementation.
// * Observe() uses an event only if both counts are finite and > 0 (with no
//   treatment or no control host at risk the arm of the event was certain
//   under every hypothesis); ignored events change nothing, counters
//   included, so treatment_events() + control_events() counts the events that
//   entered the test.
// * Relative risks in MixtureTestOptions that are not finite or not
//   > 1 + margin are dropped (an alternative below the null would break the
//   supermartingale property); if none remain the default grid is used.
//   options().relative_risks returns the grid actually in use.
// * With a tiny canary one affected host can be enough: with the default
//   grid and alpha = 0.01, if the first affected host is a treatment host
//   and n_t / n_c <= ~1/1000 (e.g. 10 canaries, 10,000 controls) the test
//   rejects at once (e ~ 110-160). That is correct under the model (under
//   H0 this happens with probability ~n_t / n_c), but it is where the
//   common-hazard assumption above matters most.
// * Measured by tests/stats_test.cc (treatment arm doubling daily from 5 to
//   5,120 hosts against 10,000 controls): false halts 2.1% at alpha = 5%;
//   a doubled risk is detected after ~52 affected treatment hosts (~309 in
//   all), against ~34 (~274) for the SPRT that knows the risk.
// * e_value() saturates at the largest finite double; log_e_value() is
//   exact. No NaN or inf is produced for any input.
// * The SPRTs stop at their first decision: later Observe() calls only
//   return it. Parameters violating their requirements (assert in debug
//   builds) give, in release builds, a test that never decides.
//
// References.
// * A. Wald (1945). Sequential Tests of Statistical Hypotheses. Annals of
//   Mathematical Statistics 16(2):117-186.
// * J. Ville (1939). Etude critique de la notion de collectif.
//   Gauthier-Villars, Paris.
// * H. Robbins (1970). Statistical methods related to the law of the
//   iterated logarithm. Annals of Mathematical Statistics 41(5):1397-1409.
// * M. Kulldorff, R. L. Davis, M. Kolczak, E. Lewis, T. Lieu, R. Platt
//   (2011). A Maximized Sequential Probability Ratio Test for Drug and
//   Vaccine Safety Surveillance. Sequential Analysis 30(1):58-78.
// * R. Johari, L. Pekelis, D. J. Walsh (2017; 2022). Always valid inference:
//   Bringing sequential analysis to A/B testing. arXiv:1512.04922; published
//   as "Always valid inference: Continuous monitoring of A/B tests",
//   Operations Research 70(3):1806-1821.
// * A. Ramdas, P. Grunwald, V. Vovk, G. Shafer (2023). Game-theoretic
//   statistics and safe anytime-valid inference. Statistical Science
//   38(4):576-601.
#pragma once

#include <cstdint>
#include <vector>

namespace ringfence {

// Options of ConditionalMixtureTest.
struct MixtureTestOptions {
  // Tolerated relative increase: H0 is rate_t <= (1 + margin) * rate_c.
  // REQUIRES: margin >= 0.
  double margin = 0.0;
  // False-halt budget. REQUIRES: 0 < alpha < 1.
  double alpha = 0.01;
  // Relative risks (> 1 + margin) mixed with equal prior weight. Empty = the
  // default grid (see DefaultRelativeRiskGrid()).
  std::vector<double> relative_risks;
};

// DefaultRelativeRiskGrid
//
// The default mixing grid: relative risks log-spaced, from just above
// (1 + margin) up to 1000.
std::vector<double> DefaultRelativeRiskGrid(double margin);

// ConditionalMixtureTest
//
// Anytime-valid test of H0: "treatment rate <= (1 + margin) * control rate".
// Conditioning on the event that *some* at-risk host became affected, the
// probability it is a treatment host is, under H0, at most
//   p0 = (1 + margin) n_t / ((1 + margin) n_t + n_c)
// where n_t, n_c are the hosts at risk in each arm at that instant. Each
// affected host is a Bernoulli trial; the mixture over relative risks of the
// likelihood ratios is a nonnegative supermartingale under H0, so by Ville's
// inequality P(sup_t E_t >= 1/alpha) <= alpha however often it is evaluated.
class ConditionalMixtureTest {
 public:
  explicit ConditionalMixtureTest(const MixtureTestOptions& options = {});

  // Observe
  //
  // Records that one more distinct host became affected, in treatment if
  // `in_treatment`, while `treatment_at_risk` and `control_at_risk` hosts
  // were at risk (counted *before* this host left the risk set). An event with
  // treatment_at_risk == 0 and in_treatment == false carries no information
  // and is ignored, as is any event with both counts <= 0.
  void Observe(bool in_treatment, double treatment_at_risk,
               double control_at_risk);

  // ObserveDeferred
  //
  // Observe() without checking the threshold, for affected hosts that became
  // known at the same instant (one ingest batch, one silence sweep): their
  // order within the instant is arbitrary, so the e-value between two of
  // them is not an observation of the process, and a crossing there that
  // the rest of the batch takes back must not latch rejected(). Call
  // Settle() after the last one. (Checking at fewer instants keeps Ville's
  // bound.)
  void ObserveDeferred(bool in_treatment, double treatment_at_risk,
                       double control_at_risk);

  // Settle
  //
  // Checks the threshold now: rejected() from here on if e_value() reached
  // threshold().
  void Settle();

  // The current e-value (mixture likelihood ratio; 1 before any evidence).
  double e_value() const;
  // log(e_value()).
  double log_e_value() const;
  // The e-value at which H0 is rejected: 1 / alpha.
  double threshold() const;
  // True once e_value() has reached threshold() (sticky).
  bool rejected() const { return rejected_; }

  uint64_t treatment_events() const { return treatment_events_; }
  uint64_t control_events() const { return control_events_; }
  const MixtureTestOptions& options() const { return options_; }

  // The accumulated evidence, for checkpoints: one log likelihood ratio per
  // grid point (options().relative_risks).
  const std::vector<double>& log_likelihood_ratios() const { return log_lr_; }

  // Restore
  //
  // Continues from a checkpoint taken with the same options. Returns false
  // (and changes nothing) if the grid size differs or a value is not finite.
  // Continuing a nonnegative supermartingale from its stopped value keeps
  // Ville's bound, so evidence survives restarts.
  bool Restore(const std::vector<double>& log_lr, bool rejected,
               uint64_t treatment_events, uint64_t control_events);

 private:
  MixtureTestOptions options_;
  std::vector<double> log_lr_;  // per relative risk in options_.relative_risks
  double log_weight_ = 0.0;     // log(1 / grid size)
  double log_e_ = 0.0;          // log_weight_ + logsumexp(log_lr_)
  double log_threshold_ = 0.0;  // log(1 / alpha)
  bool rejected_ = false;
  uint64_t treatment_events_ = 0;
  uint64_t control_events_ = 0;
};

// The outcome of a Wald SPRT.
enum class SprtOutcome { kContinue, kRejectNull, kAcceptNull };

// ConditionalWaldSprt
//
// Wald's SPRT on the same conditional Bernoulli trials, for a point
// alternative with known relative risk `relative_risk` (the oracle: the best
// test for that one alternative). H0: relative risk = 1 + margin.
// Thresholds: reject H0 when LLR >= log((1 - beta) / alpha), accept H0 when
// LLR <= log(beta / (1 - alpha)).
class ConditionalWaldSprt {
 public:
  ConditionalWaldSprt(double relative_risk, double margin, double alpha,
                      double beta);
  SprtOutcome Observe(bool in_treatment, double treatment_at_risk,
                      double control_at_risk);
  double llr() const { return llr_; }
  SprtOutcome outcome() const { return outcome_; }

 private:
  double relative_risk_, margin_, upper_, lower_;
  double llr_ = 0.0;
  SprtOutcome outcome_ = SprtOutcome::kContinue;
};

// PoissonWaldSprt
//
// Wald's SPRT for the treatment arm alone when the baseline hazard is known
// (events per host-hour) and the true relative risk is known: the oracle of the
// detection benchmark. LLR = k log(RR) - (RR - 1) * baseline * host_hours.
class PoissonWaldSprt {
 public:
  PoissonWaldSprt(double relative_risk, double baseline_per_host_hour,
                  double alpha, double beta);
  // Adds observed treatment exposure (host-hours) and the treatment events seen
  // during it; returns the outcome after the update.
  SprtOutcome Observe(uint64_t events, double host_hours);
  double llr() const { return llr_; }
  SprtOutcome outcome() const { return outcome_; }

 private:
  double log_rr_, drift_per_host_hour_, upper_, lower_;
  double llr_ = 0.0;
  SprtOutcome outcome_ = SprtOutcome::kContinue;
};

// RelativeRiskUpperBound
//
// The one-sided (1 - alpha) upper confidence bound on the ratio of the
// treatment's rate of affected hosts per host-hour to the control's: given
// the n = treatment + control affected hosts, the treatment's share is
// Binomial(n, RR h_t / (RR h_t + h_c)); its Clopper-Pearson bound is solved
// for RR. 0 if no host is affected in either arm; +infinity if an arm has no
// host-hours or every affected host is in the treatment. (Checked at every
// evaluation, so it is a repeated-looks bound: a stage waiting on it is
// somewhat likelier than alpha to pass by chance at some look; the control
// comparison, which is anytime-valid, keeps running regardless.)
double RelativeRiskUpperBound(uint64_t treatment_affected,
                              double treatment_host_hours,
                              uint64_t control_affected,
                              double control_host_hours, double alpha);

// PoissonMixtureLogE
//
// The log e-value of `events` counted against H0 "the count is Poisson with
// mean `expected`": the likelihood ratio of Poisson(theta * expected) to
// Poisson(expected), mixed with equal weight over theta in
// DefaultRelativeRiskGrid(0) (1.25 .. 1000):
//   log( (1 / G) sum_theta theta^events exp(-(theta - 1) expected) ).
// For a counting process whose compensator under H0 is `expected` at every
// instant, the mixture is a nonnegative martingale, so by Ville's inequality
// the chance that it ever reaches 1 / alpha is at most alpha however often it
// is evaluated (a per-look Poisson tail probability has no such bound).
// expected <= 0: every event is evidence (the grid's mean of theta^events).
double PoissonMixtureLogE(uint64_t events, double expected);

}  // namespace ringfence
