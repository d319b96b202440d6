// Aggregation of simulator runs, and their JSON.
#include <algorithm>
#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ringfence/sim.h"
#include "sim/json.h"

namespace ringfence {
namespace {

// log P(X = x) for X ~ Binomial(n, p), 0 < p < 1.
double LogBinomialPmf(uint64_t x, uint64_t n, double p) {
  return std::lgamma(n + 1.0) - std::lgamma(x + 1.0) -
         std::lgamma(n - x + 1.0) + x * std::log(p) + (n - x) * std::log1p(-p);
}

// P(X <= k).
double BinomialCdf(uint64_t k, uint64_t n, double p) {
  if (k >= n) return 1;
  if (p <= 0) return 1;
  if (p >= 1) return 0;
  double sum = 0;
  for (uint64_t x = 0; x <= k; ++x) sum += std::exp(LogBinomialPmf(x, n, p));
  return std::min(1.0, sum);
}

// The p at which f(p), decreasing in p, equals target.
template <typename F>
double SolveDecreasing(F f, double target) {
  double lo = 0, hi = 1;
  for (int i = 0; i < 100; ++i) {
    const double mid = (lo + hi) / 2;
    if (f(mid) > target) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return (lo + hi) / 2;
}

// Nearest-rank percentile of sorted values.
double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return -1;
  size_t rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::string Json(const std::string& s) {
  return absl::StrCat("\"", absl::CEscape(s), "\"");
}

std::string Num(double v) { return absl::StrFormat("%.6g", v); }

}  // namespace

absl::string_view DeciderName(Decider d) {
  switch (d) {
    case Decider::kRingfence:
      return "ringfence";
    case Decider::kOracle:
      return "oracle";
    case Decider::kThresholdRule:
      return "threshold_rule";
  }
  return "unknown";
}

absl::string_view SimOutcomeName(SimOutcome o) {
  switch (o) {
    case SimOutcome::kCompleted:
      return "completed";
    case SimOutcome::kHalted:
      return "halted";
    case SimOutcome::kStalled:
      return "stalled";
  }
  return "unknown";
}

Proportion BinomialProportion(uint64_t k, uint64_t n) {
  Proportion p;
  p.k = k;
  p.n = n;
  if (n == 0) return p;
  p.rate = static_cast<double>(k) / static_cast<double>(n);
  constexpr double kTail = 0.025;
  // Clopper-Pearson: low solves P(X >= k | p) = 2.5 %, high solves
  // P(X <= k | p) = 2.5 %.
  p.low =
      k == 0
          ? 0
          : 1 - SolveDecreasing(
                    [&](double q) { return 1 - BinomialCdf(k - 1, n, 1 - q); },
                    kTail);
  p.high = k == n ? 1
                  : SolveDecreasing(
                        [&](double q) { return BinomialCdf(k, n, q); }, kTail);
  return p;
}

SimSummary Summarize(const std::vector<SimRun>& runs) {
  SimSummary s;
  s.runs = runs.size();
  if (runs.empty()) return s;
  std::vector<double> hurt, tth, exposed_at_halt, completion;
  std::vector<bool> censored;
  uint64_t completed = 0, halted = 0, stalled = 0, good = 0, false_halts = 0;
  double hurt_at_end = 0, hurt_at_halt = 0;
  std::vector<std::pair<double, bool>> completion_runs;
  for (const SimRun& r : runs) {
    hurt.push_back(static_cast<double>(r.hurt_total));
    hurt_at_end += static_cast<double>(r.hurt_at_end);
    if (r.harmful) {
      ++s.harmful_runs;
    } else {
      ++good;
      false_halts += r.false_halt;
    }
    switch (r.outcome) {
      case SimOutcome::kCompleted:
        ++completed;
        completion_runs.emplace_back(r.end_s, false);
        break;
      case SimOutcome::kStalled:
        ++stalled;
        completion_runs.emplace_back(r.end_s, true);
        break;
      case SimOutcome::kHalted:
        ++halted;
        ++s.halt_reasons[r.halt_rule.empty() ? "unknown" : r.halt_rule];
        hurt_at_halt += static_cast<double>(r.hurt_at_halt);
        exposed_at_halt.push_back(static_cast<double>(r.exposed_at_halt));
        if (r.time_to_halt_s >= 0) tth.push_back(r.time_to_halt_s);
        break;
    }
  }
  const double n = static_cast<double>(runs.size());
  s.completed_fraction = completed / n;
  s.halted_fraction = halted / n;
  s.stalled_fraction = stalled / n;
  s.false_halts = BinomialProportion(false_halts, good);
  std::sort(hurt.begin(), hurt.end());
  double sum = 0;
  for (double h : hurt) sum += h;
  s.hurt_mean = sum / n;
  s.hurt_p50 = Percentile(hurt, 0.5);
  s.hurt_p95 = Percentile(hurt, 0.95);
  s.hurt_at_end_mean = hurt_at_end / n;
  if (halted > 0) {
    s.hurt_at_halt_mean = hurt_at_halt / halted;
    std::sort(exposed_at_halt.begin(), exposed_at_halt.end());
    sum = 0;
    for (double e : exposed_at_halt) sum += e;
    s.exposed_at_halt_mean = sum / halted;
    s.exposed_at_halt_p50 = Percentile(exposed_at_halt, 0.5);
    s.exposed_at_halt_p95 = Percentile(exposed_at_halt, 0.95);
  }
  if (!tth.empty()) {
    std::sort(tth.begin(), tth.end());
    sum = 0;
    for (double t : tth) sum += t;
    s.time_to_halt_s_mean = sum / tth.size();
    s.time_to_halt_s_p50 = Percentile(tth, 0.5);
    s.time_to_halt_s_p95 = Percentile(tth, 0.95);
  }
  if (!completion_runs.empty()) {
    // Censored runs sort after completed ones at the same time.
    std::sort(completion_runs.begin(), completion_runs.end());
    auto pick = [&](double q, double* value, bool* cens) {
      size_t rank = static_cast<size_t>(std::ceil(q * completion_runs.size()));
      rank = std::clamp<size_t>(rank, 1, completion_runs.size());
      *value = completion_runs[rank - 1].first;
      *cens = completion_runs[rank - 1].second;
    };
    pick(0.5, &s.completion_s_p50, &s.completion_p50_censored);
    pick(0.95, &s.completion_s_p95, &s.completion_p95_censored);
  }
  return s;
}

std::string SummaryJson(const SimSummary& s) {
  std::vector<std::string> reasons;
  for (const auto& [k, v] : s.halt_reasons) {
    reasons.push_back(absl::StrCat(Json(k), ": ", v));
  }
  const Proportion& f = s.false_halts;
  return absl::StrCat(
      "{\"runs\": ", s.runs,
      ", \"completed_fraction\": ", Num(s.completed_fraction),
      ", \"halted_fraction\": ", Num(s.halted_fraction),
      ", \"stalled_fraction\": ", Num(s.stalled_fraction),
      ", \"harmful_runs\": ", s.harmful_runs, ", \"false_halts\": ", f.k,
      ", \"good_runs\": ", f.n, ", \"false_halt_rate\": ", Num(f.rate),
      ", \"false_halt_ci95\": [", Num(f.low), ", ", Num(f.high), "]",
      ", \"halt_reasons\": {", absl::StrJoin(reasons, ", "), "}",
      ", \"hurt_mean\": ", Num(s.hurt_mean),
      ", \"hurt_p50\": ", Num(s.hurt_p50), ", \"hurt_p95\": ", Num(s.hurt_p95),
      ", \"hurt_at_end_mean\": ", Num(s.hurt_at_end_mean),
      ", \"hurt_at_halt_mean\": ", Num(s.hurt_at_halt_mean),
      ", \"exposed_at_halt_mean\": ", Num(s.exposed_at_halt_mean),
      ", \"exposed_at_halt_p50\": ", Num(s.exposed_at_halt_p50),
      ", \"exposed_at_halt_p95\": ", Num(s.exposed_at_halt_p95),
      ", \"time_to_halt_s_mean\": ", Num(s.time_to_halt_s_mean),
      ", \"time_to_halt_s_p50\": ", Num(s.time_to_halt_s_p50),
      ", \"time_to_halt_s_p95\": ", Num(s.time_to_halt_s_p95),
      ", \"completion_s_p50\": ", Num(s.completion_s_p50),
      ", \"completion_p50_censored\": ",
      s.completion_p50_censored ? "true" : "false",
      ", \"completion_s_p95\": ", Num(s.completion_s_p95),
      ", \"completion_p95_censored\": ",
      s.completion_p95_censored ? "true" : "false", "}");
}

std::string RunJson(const SimRun& r) {
  std::vector<std::string> fp;
  for (uint64_t v : r.stage_fingerprints) {
    fp.push_back(absl::StrFormat("\"%016x\"", v));
  }
  return absl::StrCat(
      "{\"decider\": ", Json(std::string(DeciderName(r.decider))),
      ", \"seed\": ", r.seed,
      ", \"outcome\": ", Json(std::string(SimOutcomeName(r.outcome))),
      ", \"harmful\": ", r.harmful ? "true" : "false",
      ", \"false_halt\": ", r.false_halt ? "true" : "false",
      ", \"halt_rule\": ", Json(r.halt_rule),
      ", \"halt_reason\": ", Json(r.halt_reason),
      ", \"stage\": ", Json(r.stage),
      ", \"time_to_halt_s\": ", Num(r.time_to_halt_s),
      ", \"end_s\": ", Num(r.end_s),
      ", \"exposed_at_halt\": ", r.exposed_at_halt,
      ", \"exposed_at_end\": ", r.exposed_at_end,
      ", \"hurt_at_halt\": ", r.hurt_at_halt,
      ", \"hurt_at_end\": ", r.hurt_at_end, ", \"hurt_total\": ", r.hurt_total,
      ", \"exposed_total\": ", r.exposed_total,
      ", \"crash_events\": ", r.crash_events,
      ", \"outage_dropped_events\": ", r.outage_dropped_events,
      ", \"restarts\": ", r.restarts, ", \"tracked_hosts\": ", r.tracked_hosts,
      ", \"oracle_llr\": ", Num(r.oracle_llr), ", \"stage_fingerprints\": [",
      absl::StrJoin(fp, ", "), "]",
      ", \"wall_seconds\": ", absl::StrFormat("%.3f", r.wall_seconds), "}");
}

}  // namespace ringfence
