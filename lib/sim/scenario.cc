// Scenario validation, ground truth, rehearsal presets and plan warnings.
#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "fleet.h"
#include "ringfence/error_text.h"
#include "ringfence/gate.h"
#include "ringfence/hash.h"
#include "ringfence/policy.h"
#include "ringfence/sim.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

using config::v1::SimEffect;
using google::protobuf::Duration;

constexpr int kMaxOutages = 8;
constexpr int kMaxValues = 255;

absl::Status Invalid(absl::string_view field, absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", reason));
}

absl::Status InRange(double v, double lo, double hi, absl::string_view field) {
  if (!std::isfinite(v) || v < lo || v > hi) {
    return Invalid(
        field, absl::StrCat("must be in [", lo, ", ", hi, "] (got ", v, ")"));
  }
  return absl::OkStatus();
}

absl::Status Prob(double p, absl::string_view field) {
  return InRange(p, 0, 1, field);
}

absl::Status NonNegative(const Duration& d, absl::string_view field) {
  if (d.seconds() < 0 || d.nanos() < 0) return Invalid(field, "must be >= 0");
  if (d.seconds() > 366LL * 86400) {
    return Invalid(field, "must be at most a year");
  }
  return absl::OkStatus();
}

absl::Status CheckWeights(
    const google::protobuf::RepeatedPtrField<config::v1::Weighted>& list,
    absl::string_view field) {
  if (list.size() > kMaxValues) {
    return Invalid(field, absl::StrCat("at most ", kMaxValues, " values"));
  }
  for (int i = 0; i < list.size(); ++i) {
    RETURN_IF_ERROR(InRange(list[i].weight(), 0, 1e12,
                            absl::StrCat(field, "[", i, "].weight")));
    if (list[i].value().empty()) {
      return Invalid(absl::StrCat(field, "[", i, "].value"),
                     "must not be empty");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckZones(
    const google::protobuf::RepeatedPtrField<config::v1::TimeZoneMix>& list,
    absl::string_view field) {
  for (int i = 0; i < list.size(); ++i) {
    RETURN_IF_ERROR(InRange(list[i].utc_offset_hours(), -14, 14,
                            absl::StrCat(field, "[", i, "].utc_offset_hours")));
    RETURN_IF_ERROR(InRange(list[i].weight(), 0, 1e12,
                            absl::StrCat(field, "[", i, "].weight")));
  }
  return absl::OkStatus();
}

absl::Status CheckCycle(const config::v1::SimCycle& c,
                        absl::string_view field) {
  RETURN_IF_ERROR(InRange(c.daily_amplitude(), 0, 1,
                          absl::StrCat(field, ".daily_amplitude")));
  if (!std::isfinite(c.peak_hour()) || c.peak_hour() < 0 ||
      c.peak_hour() >= 24) {
    return Invalid(absl::StrCat(field, ".peak_hour"), "must be in [0, 24)");
  }
  return InRange(c.weekend_factor(), 0, 100,
                 absl::StrCat(field, ".weekend_factor"));
}

const absl::flat_hash_set<std::string>& EventNames() {
  static const auto* names = new absl::flat_hash_set<std::string>{
      "applying", "applied", "heartbeat", "crash", "boot", "signal"};
  return *names;
}

bool StageExists(const Plan& plan, const std::string& stage) {
  if (stage.empty()) return true;
  for (const Stage& s : plan.stages()) {
    if (s.name() == stage) return true;
  }
  return false;
}

double SignalBase(const Scenario& s, const std::string& name) {
  for (const auto& r : s.behavior().signals()) {
    if (r.name() == name) return r.per_host_hour();
  }
  return 0;
}

}  // namespace

absl::Status ValidateScenario(const Scenario& s) {
  const auto& f = s.fleet();
  if (f.hosts() == 0) return Invalid("fleet.hosts", "must be > 0");
  if (f.hosts() > 50000000) {
    return Invalid("fleet.hosts", "must be at most 50,000,000");
  }
  RETURN_IF_ERROR(CheckWeights(f.agent_versions(), "fleet.agent_versions"));
  RETURN_IF_ERROR(CheckWeights(f.platforms(), "fleet.platforms"));
  RETURN_IF_ERROR(CheckWeights(f.regions(), "fleet.regions"));
  RETURN_IF_ERROR(CheckZones(f.time_zones(), "fleet.time_zones"));
  if (f.tenants_size() > kMaxValues) {
    return Invalid("fleet.tenants", "at most 255 tenants");
  }
  absl::flat_hash_set<std::string> tenant_names;
  for (int i = 0; i < f.tenants_size(); ++i) {
    const std::string field = absl::StrCat("fleet.tenants[", i, "]");
    RETURN_IF_ERROR(ValidateId(f.tenants(i).name(), field + ".name"));
    if (!tenant_names.insert(f.tenants(i).name()).second) {
      return Invalid(field + ".name", "duplicate tenant");
    }
    RETURN_IF_ERROR(InRange(f.tenants(i).weight(), 0, 1e12, field + ".weight"));
  }
  if (f.dogfood_hosts() > f.hosts()) {
    return Invalid("fleet.dogfood_hosts", "must be at most fleet.hosts");
  }
  if (f.segments_size() > kMaxValues) {
    return Invalid("fleet.segments", "at most 255 segments");
  }
  uint64_t fixed = 0;
  absl::flat_hash_set<std::string> segment_names;
  for (int i = 0; i < f.segments_size(); ++i) {
    const auto& sg = f.segments(i);
    const std::string p = absl::StrCat("fleet.segments[", i, "]");
    if (!sg.name().empty() && !segment_names.insert(sg.name()).second) {
      return Invalid(p + ".name", "duplicate segment");
    }
    fixed += sg.hosts();
    RETURN_IF_ERROR(InRange(sg.weight(), 0, 1e12, p + ".weight"));
    RETURN_IF_ERROR(CheckWeights(sg.agent_versions(), p + ".agent_versions"));
    RETURN_IF_ERROR(CheckWeights(sg.platforms(), p + ".platforms"));
    RETURN_IF_ERROR(CheckWeights(sg.regions(), p + ".regions"));
    RETURN_IF_ERROR(CheckWeights(sg.tenants(), p + ".tenants"));
    RETURN_IF_ERROR(CheckZones(sg.time_zones(), p + ".time_zones"));
    for (int j = 0; j < sg.labels_size(); ++j) {
      RETURN_IF_ERROR(
          ValidateId(sg.labels(j), absl::StrCat(p, ".labels[", j, "]")));
    }
    if (sg.has_crash_multiplier()) {
      RETURN_IF_ERROR(
          InRange(sg.crash_multiplier(), 0, 1000, p + ".crash_multiplier"));
    }
    if (sg.has_chronic_fraction()) {
      RETURN_IF_ERROR(Prob(sg.chronic_fraction(), p + ".chronic_fraction"));
    }
    if (sg.has_flapper_fraction()) {
      RETURN_IF_ERROR(Prob(sg.flapper_fraction(), p + ".flapper_fraction"));
    }
  }
  if (fixed > f.hosts()) {
    return Invalid(
        "fleet.segments",
        absl::StrCat("fixed-size segments hold ", fixed,
                     " hosts, more than fleet.hosts (", f.hosts(), ")"));
  }

  const auto& b = s.behavior();
  RETURN_IF_ERROR(Prob(b.offline_fraction(), "behavior.offline_fraction"));
  if (b.offline_fraction() >= 1) {
    return Invalid("behavior.offline_fraction", "must be < 1");
  }
  RETURN_IF_ERROR(
      NonNegative(b.mean_offline_time(), "behavior.mean_offline_time"));
  RETURN_IF_ERROR(Prob(b.telemetry_loss(), "behavior.telemetry_loss"));
  if (b.telemetry_loss() >= 1) {
    return Invalid("behavior.telemetry_loss", "must be < 1");
  }
  RETURN_IF_ERROR(
      NonNegative(b.mean_telemetry_delay(), "behavior.mean_telemetry_delay"));
  RETURN_IF_ERROR(
      InRange(b.crash_per_host_hour(), 0, 10, "behavior.crash_per_host_hour"));
  RETURN_IF_ERROR(CheckCycle(b.crash_cycle(), "behavior.crash_cycle"));
  RETURN_IF_ERROR(CheckCycle(b.offline_cycle(), "behavior.offline_cycle"));
  RETURN_IF_ERROR(InRange(b.crash_frailty_shape(), 0, 1000,
                          "behavior.crash_frailty_shape"));
  RETURN_IF_ERROR(Prob(b.chronic_crashers().fraction(),
                       "behavior.chronic_crashers.fraction"));
  RETURN_IF_ERROR(InRange(b.chronic_crashers().per_host_hour(), 0, 360,
                          "behavior.chronic_crashers.per_host_hour"));
  RETURN_IF_ERROR(Prob(b.flappers().fraction(), "behavior.flappers.fraction"));
  RETURN_IF_ERROR(NonNegative(b.flappers().up(), "behavior.flappers.up"));
  RETURN_IF_ERROR(NonNegative(b.flappers().down(), "behavior.flappers.down"));
  const auto& t = b.telemetry();
  RETURN_IF_ERROR(NonNegative(t.fixed_lag(), "behavior.telemetry.fixed_lag"));
  RETURN_IF_ERROR(
      NonNegative(t.batch_interval(), "behavior.telemetry.batch_interval"));
  RETURN_IF_ERROR(NonNegative(t.clock_skew(), "behavior.telemetry.clock_skew"));
  if (t.host_lags_size() > kMaxValues) {
    return Invalid("behavior.telemetry.host_lags", "at most 255 classes");
  }
  for (int i = 0; i < t.host_lags_size(); ++i) {
    const std::string p = absl::StrCat("behavior.telemetry.host_lags[", i, "]");
    RETURN_IF_ERROR(NonNegative(t.host_lags(i).lag(), p + ".lag"));
    RETURN_IF_ERROR(InRange(t.host_lags(i).weight(), 0, 1e12, p + ".weight"));
  }
  for (int i = 0; i < t.event_lags_size(); ++i) {
    const std::string p =
        absl::StrCat("behavior.telemetry.event_lags[", i, "]");
    if (!EventNames().contains(t.event_lags(i).event())) {
      return Invalid(
          p + ".event",
          absl::StrCat("unknown event ", QuoteForError(t.event_lags(i).event()),
                       " (applying, applied, heartbeat, crash, "
                       "boot, signal)"));
    }
    RETURN_IF_ERROR(NonNegative(t.event_lags(i).lag(), p + ".lag"));
  }
  absl::flat_hash_set<std::string> signal_names;
  for (int i = 0; i < b.signals_size(); ++i) {
    const std::string p = absl::StrCat("behavior.signals[", i, "]");
    const std::string& name = b.signals(i).name();
    if (name.empty() || name.size() > 64) {
      return Invalid(p + ".name", "must be 1..64 characters");
    }
    if (name == kSignalCrash || name == kSignalUncleanReboot ||
        name == kSignalSilent || name == kSignalApplyStuck) {
      return Invalid(p + ".name", "must not be a built-in signal");
    }
    if (!signal_names.insert(name).second) {
      return Invalid(p + ".name", "duplicate signal");
    }
    RETURN_IF_ERROR(
        InRange(b.signals(i).per_host_hour(), 0, 10, p + ".per_host_hour"));
  }

  if (s.outages_size() > kMaxOutages) {
    return Invalid("outages", absl::StrCat("at most ", kMaxOutages));
  }
  for (int i = 0; i < s.outages_size(); ++i) {
    const auto& o = s.outages(i);
    const std::string p = absl::StrCat("outages[", i, "]");
    RETURN_IF_ERROR(Prob(o.fraction(), p + ".fraction"));
    RETURN_IF_ERROR(NonNegative(o.start(), p + ".start"));
    RETURN_IF_ERROR(NonNegative(o.duration(), p + ".duration"));
  }
  if (s.restarts_size() > 64) return Invalid("restarts", "at most 64");
  for (int i = 0; i < s.restarts_size(); ++i) {
    const std::string p = absl::StrCat("restarts[", i, "]");
    RETURN_IF_ERROR(NonNegative(s.restarts(i).at(), p + ".at"));
    RETURN_IF_ERROR(NonNegative(s.restarts(i).downtime(), p + ".downtime"));
  }

  const SimEffect& e = s.effect();
  RETURN_IF_ERROR(Prob(e.crash_on_apply(), "effect.crash_on_apply"));
  RETURN_IF_ERROR(Prob(e.boot_loop(), "effect.boot_loop"));
  RETURN_IF_ERROR(Prob(e.apply_failure(), "effect.apply_failure"));
  RETURN_IF_ERROR(Prob(e.breaks_telemetry(), "effect.breaks_telemetry"));
  RETURN_IF_ERROR(
      InRange(e.hazard_multiplier(), 0, 10000, "effect.hazard_multiplier"));
  RETURN_IF_ERROR(NonNegative(e.delay(), "effect.delay"));
  RETURN_IF_ERROR(NonNegative(e.boot_interval(), "effect.boot_interval"));
  RETURN_IF_ERROR(
      InRange(e.hang_per_host_hour(), 0, 100, "effect.hang_per_host_hour"));
  RETURN_IF_ERROR(NonNegative(e.hang_duration(), "effect.hang_duration"));
  RETURN_IF_ERROR(NonNegative(e.trigger_at(), "effect.trigger_at"));
  for (int i = 0; i < e.signals_size(); ++i) {
    const std::string p = absl::StrCat("effect.signals[", i, "]");
    if (!signal_names.contains(e.signals(i).name())) {
      return Invalid(
          p + ".name",
          absl::StrCat("no signal ", QuoteForError(e.signals(i).name()),
                       " in behavior.signals"));
    }
    RETURN_IF_ERROR(
        InRange(e.signals(i).multiplier(), 0, 10000, p + ".multiplier"));
  }

  RETURN_IF_ERROR(NonNegative(s.step(), "step"));
  RETURN_IF_ERROR(NonNegative(s.warmup(), "warmup"));
  RETURN_IF_ERROR(NonNegative(s.max_duration(), "max_duration"));
  RETURN_IF_ERROR(NonNegative(s.horizon(), "horizon"));
  RETURN_IF_ERROR(
      NonNegative(b.heartbeat_interval(), "behavior.heartbeat_interval"));
  const absl::Duration step =
      s.has_step() && FromProto(s.step()) > absl::ZeroDuration()
          ? FromProto(s.step())
          : absl::Seconds(10);
  const absl::Duration hb =
      FromProto(b.heartbeat_interval()) > absl::ZeroDuration()
          ? FromProto(b.heartbeat_interval())
          : absl::Seconds(60);
  if (step < absl::Seconds(1)) return Invalid("step", "must be >= 1s");
  if (hb < step) {
    return Invalid("behavior.heartbeat_interval", "must be >= step");
  }
  const absl::Duration total =
      (FromProto(s.max_duration()) > absl::ZeroDuration()
           ? FromProto(s.max_duration())
           : absl::Hours(48)) +
      (s.has_horizon() ? FromProto(s.horizon()) : absl::Hours(24)) +
      FromProto(s.warmup());
  if (total / step > 5000000) {
    return Invalid("max_duration",
                   "max_duration + horizon + warmup must be at most "
                   "5,000,000 steps");
  }
  if (hb / step > 60000) {
    return Invalid("behavior.heartbeat_interval",
                   "must be at most 60,000 steps");
  }
  return absl::OkStatus();
}

absl::Status ValidateScenarioForPlan(const Scenario& s, const Plan& plan) {
  RETURN_IF_ERROR(ValidateScenario(s));
  auto check = [&](const std::string& stage,
                   absl::string_view field) -> absl::Status {
    if (StageExists(plan, stage)) return absl::OkStatus();
    return Invalid(
        field, absl::StrCat("the plan has no stage ", QuoteForError(stage)));
  };
  for (int i = 0; i < s.outages_size(); ++i) {
    RETURN_IF_ERROR(
        check(s.outages(i).stage(), absl::StrCat("outages[", i, "].stage")));
  }
  for (int i = 0; i < s.restarts_size(); ++i) {
    RETURN_IF_ERROR(
        check(s.restarts(i).stage(), absl::StrCat("restarts[", i, "].stage")));
  }
  return check(s.effect().trigger_stage(), "effect.trigger_stage");
}

bool HasEffect(const Scenario& s) {
  const SimEffect& e = s.effect();
  if (e.crash_on_apply() > 0 || e.boot_loop() > 0 ||
      e.hang_per_host_hour() > 0 || e.apply_failure() > 0 ||
      e.breaks_telemetry() > 0) {
    return true;
  }
  if (e.hazard_multiplier() != 0 && e.hazard_multiplier() != 1) return true;
  for (const auto& sig : e.signals()) {
    if (sig.multiplier() != 0 && sig.multiplier() != 1) return true;
  }
  return false;
}

bool CanHurt(const Scenario& s) {
  const SimEffect& e = s.effect();
  if (e.crash_on_apply() > 0 || e.boot_loop() > 0 ||
      e.hang_per_host_hour() > 0 || e.apply_failure() > 0 ||
      e.breaks_telemetry() > 0) {
    return true;
  }
  if (e.hazard_multiplier() > 1 && s.behavior().crash_per_host_hour() > 0) {
    return true;
  }
  for (const auto& sig : e.signals()) {
    if (sig.multiplier() > 1 && SignalBase(s, sig.name()) > 0) return true;
  }
  return false;
}

absl::StatusOr<Scenario> RehearsalScenario(const Scenario& base,
                                           absl::string_view preset) {
  Scenario s = base;
  s.clear_effect();
  if (preset == "boot-loop") {
    s.mutable_effect()->set_boot_loop(1.0);
    s.set_name("rehearse-boot-loop");
    return s;
  }
  double x = 0;
  if (absl::ConsumePrefix(&preset, "crash-on-apply:") &&
      absl::SimpleAtod(preset, &x) && x >= 0 && x <= 1) {
    s.mutable_effect()->set_crash_on_apply(x);
    s.set_name(absl::StrCat("rehearse-crash-on-apply-", x));
    return s;
  }
  if (absl::ConsumePrefix(&preset, "crash-rate:") &&
      absl::SimpleAtod(preset, &x) && x >= 0 && x <= 10000) {
    s.mutable_effect()->set_hazard_multiplier(x);
    if (s.behavior().crash_per_host_hour() == 0) {
      s.mutable_behavior()->set_crash_per_host_hour(0.001);
    }
    s.set_name(absl::StrCat("rehearse-crash-rate-", x));
    return s;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("rehearse: unknown preset ", QuoteForError(preset),
                   " (boot-loop, crash-on-apply:<p>, crash-rate:<RR>)"));
}

namespace internal {

Scenario ApplyDeprecatedFields(const Scenario& in) {
  Scenario s = in;
  auto* b = s.mutable_behavior();
  if (b->flapping_hosts() > 0 && !b->has_chronic_crashers() &&
      s.fleet().hosts() > 0) {
    const absl::Duration hb =
        FromProto(b->heartbeat_interval()) > absl::ZeroDuration()
            ? FromProto(b->heartbeat_interval())
            : absl::Seconds(60);
    b->mutable_chronic_crashers()->set_fraction(
        std::min(1.0, static_cast<double>(b->flapping_hosts()) /
                          static_cast<double>(s.fleet().hosts())));
    b->mutable_chronic_crashers()->set_per_host_hour(
        std::min(360.0, absl::FDivDuration(absl::Hours(1), hb)));
  }
  b->clear_flapping_hosts();
  return s;
}

}  // namespace internal

std::vector<std::string> PlanWarnings(const Scenario& in, const Plan& plan) {
  const Scenario s = internal::ApplyDeprecatedFields(in);
  std::vector<std::string> out;
  std::mt19937_64 rng(1);
  const internal::SimHosts hosts = internal::DrawFleet(s, rng);
  const int stages = plan.stages_size();
  // Deterministic selectors, and the percent stages' bucket limits.
  absl::flat_hash_map<std::string, int> label_stage, host_stage;
  int early_stage = -1;
  std::vector<std::pair<double, int>> percent;  // (cumulative share, stage)
  for (int k = 0; k < stages; ++k) {
    const Audience& a = plan.stages(k).audience();
    for (const auto& l : a.labels()) label_stage.emplace(l, k);
    for (const auto& h : a.hosts()) host_stage.emplace(h, k);
    if (a.early_track() && early_stage < 0) early_stage = k;
    if (a.percent() > 0) {
      percent.emplace_back(PercentToBucketLimit(a.percent()) / 1e6, k);
    }
  }
  const TenantTracks tracks(hosts.fleet_config);
  std::vector<double> expected(stages + 1, 0);
  // P(first stage == 0) per host, to weight the baseline estimates below.
  std::vector<double> in_first(hosts.n, 0);
  char id[internal::kHostIdLength];
  for (uint32_t i = 0; i < hosts.n; ++i) {
    const Track track = tracks.TrackOf(hosts.tenants[hosts.tenant[i]]);
    if (track == config::v1::TRACK_PINNED) continue;
    if (track == config::v1::TRACK_LATE) {
      expected[stages] += 1;
      continue;
    }
    int best = INT32_MAX;
    for (const auto& l : hosts.segment_labels[hosts.segment[i]]) {
      auto it = label_stage.find(l);
      if (it != label_stage.end()) best = std::min(best, it->second);
    }
    if (hosts.traits[i] & internal::kTraitDogfood) {
      auto it = label_stage.find(internal::kDogfoodLabel);
      if (it != label_stage.end()) best = std::min(best, it->second);
    }
    if (!host_stage.empty()) {
      internal::WriteHostId(i, id);
      auto it = host_stage.find(absl::string_view(id, sizeof(id)));
      if (it != host_stage.end()) best = std::min(best, it->second);
    }
    if (track == config::v1::TRACK_EARLY && early_stage >= 0) {
      best = std::min(best, early_stage);
    }
    double below = 0;  // share of buckets already placed
    if (best != 0) {
      for (const auto& [share, k] : percent) {
        if (k >= best) break;
        expected[k] += share - below;
        if (k == 0) in_first[i] += share - below;
        below = share;
      }
    }
    if (best != INT32_MAX) {
      expected[best] += 1 - below;
      if (best == 0) in_first[i] += 1 - below;
    }
  }
  for (int k = 0; k < stages; ++k) {
    const GatePolicy policy = EffectivePolicy(plan, k);
    if (expected[k] < policy.min_exposed_hosts()) {
      out.push_back(absl::StrFormat(
          "stages[%d] (%s): selects about %.1f hosts of this fleet (expected "
          "over seeds), fewer than its min_exposed_hosts (%d): the rollout "
          "cannot promote out of it",
          k, plan.stages(k).name(), expected[k], policy.min_exposed_hosts()));
    }
  }
  // The first stage's initially paced hosts, by the fleet's baseline alone.
  const GatePolicy policy = EffectivePolicy(plan, 0);
  const double initial =
      std::min<double>(EffectivePacing(plan, 0).initial_hosts(), expected[0]);
  const absl::Duration bake = StageBakeTime(plan, 0);
  const double bake_h = absl::ToDoubleHours(bake);
  const auto& b = s.behavior();
  const double chronic_rate = b.chronic_crashers().per_host_hour() > 0
                                  ? b.chronic_crashers().per_host_hour()
                                  : 6;
  const double mean_off_h = absl::ToDoubleHours(
      FromProto(b.mean_offline_time()) > absl::ZeroDuration()
          ? FromProto(b.mean_offline_time())
          : absl::Hours(2));
  const double leave_per_h =
      b.offline_fraction() / ((1 - b.offline_fraction()) * mean_off_h);
  double weight = 0, p_crash = 0, p_silent = 0;
  for (uint32_t i = 0; i < hosts.n; ++i) {
    const double w = in_first[i];
    if (w <= 0) continue;
    weight += w;
    const uint8_t t = hosts.traits[i];
    p_crash += w * ((t & internal::kTraitChronic)
                        ? 1 - std::exp(-chronic_rate * bake_h)
                        : 1 - std::exp(-b.crash_per_host_hour() *
                                       hosts.CrashWeight(i) * bake_h));
    p_silent += w * ((t & internal::kTraitFlapper)
                         ? 1.0
                         : 1 - std::exp(-leave_per_h * bake_h));
  }
  if (weight > 0 && initial > 0) {
    p_crash /= weight;
    p_silent /= weight;
    for (const SignalRule& r : policy.signals()) {
      if (r.max_affected_hosts() == 0) continue;
      double p = 0;
      std::string why;
      if (r.signal() == kSignalCrash || r.signal() == kSignalUncleanReboot) {
        p = p_crash;
        why = "crashes";
      } else if (r.signal() == kSignalSilent) {
        p = p_silent;
        why = "offline spells and flapping";
      } else if (const double base = SignalBase(s, r.signal()); base > 0) {
        p = 1 - std::exp(-base * bake_h);
        why = "its baseline rate";
      }
      const double mean = initial * p;
      if (p > 0 && mean >= r.max_affected_hosts()) {
        out.push_back(absl::StrFormat(
            "stages[0] (%s): its %.0f initially paced hosts alone are "
            "expected to show \"%s\" on %.1f hosts during its %s bake by this "
            "fleet's baseline (%s), at least its circuit breaker's %d: the "
            "stage may halt whatever the release does",
            plan.stages(0).name(), initial, r.signal(), mean,
            absl::FormatDuration(bake), why, r.max_affected_hosts()));
      }
    }
  }
  return out;
}

}  // namespace ringfence
