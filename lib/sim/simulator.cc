#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "ringfence/assign.h"
#include "ringfence/controller.h"
#include "ringfence/gate.h"
#include "ringfence/hash.h"
#include "ringfence/policy.h"
#include "ringfence/sim.h"
#include "ringfence/stats.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

using config::v1::SimEffect;

constexpr char kContentType[] = "sim/content";
constexpr char kOld[] = "sim-old";
constexpr char kNew[] = "sim-new";

absl::Status Invalid(absl::string_view field, absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", reason));
}

absl::Duration Or(const google::protobuf::Duration& d, absl::Duration def) {
  const absl::Duration v = FromProto(d);
  return v == absl::ZeroDuration() ? def : v;
}

// Per-host flags.
enum : uint8_t {
  kOnline = 1,
  kRunsNew = 2,
  kDead = 4,       // boot-looping: never reports again
  kHurt = 8,       // hurt by the update's effect
  kAffected = 16,  // the effect applies to this host (version/platform)
  kEverExposed = 32,
};

// A telemetry event waiting for delivery.
struct PendingEvent {
  uint32_t host;
  EventType type;
  bool new_release;
  bool clean;
};

std::string HostId(uint32_t i) { return absl::StrFormat("h%08u", i); }

// Picks by weight with a uniform u in [0, 1).
int PickWeighted(const std::vector<double>& cumulative, double u) {
  const double x = u * cumulative.back();
  return static_cast<int>(
      std::upper_bound(cumulative.begin(), cumulative.end(), x) -
      cumulative.begin());
}

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

bool HasEffect(const Scenario& s) {
  const SimEffect& e = s.effect();
  return e.crash_on_apply() > 0 || e.boot_loop() > 0 ||
         (e.hazard_multiplier() != 0 && e.hazard_multiplier() != 1);
}

absl::Status ValidateScenario(const Scenario& s) {
  if (s.fleet().hosts() == 0) return Invalid("fleet.hosts", "must be > 0");
  if (s.fleet().hosts() > 50000000) {
    return Invalid("fleet.hosts", "must be at most 50,000,000");
  }
  auto prob = [](double p, absl::string_view field) -> absl::Status {
    if (!std::isfinite(p) || p < 0 || p > 1) {
      return Invalid(field, absl::StrCat("must be in [0, 1] (got ", p, ")"));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(
      prob(s.behavior().offline_fraction(), "behavior.offline_fraction"));
  if (s.behavior().offline_fraction() >= 1) {
    return Invalid("behavior.offline_fraction", "must be < 1");
  }
  RETURN_IF_ERROR(
      prob(s.behavior().telemetry_loss(), "behavior.telemetry_loss"));
  RETURN_IF_ERROR(prob(s.effect().crash_on_apply(), "effect.crash_on_apply"));
  RETURN_IF_ERROR(prob(s.effect().boot_loop(), "effect.boot_loop"));
  if (!std::isfinite(s.behavior().crash_per_host_hour()) ||
      s.behavior().crash_per_host_hour() < 0 ||
      s.behavior().crash_per_host_hour() > 10) {
    return Invalid("behavior.crash_per_host_hour", "must be in [0, 10]");
  }
  if (!std::isfinite(s.effect().hazard_multiplier()) ||
      s.effect().hazard_multiplier() < 0 ||
      s.effect().hazard_multiplier() > 10000) {
    return Invalid("effect.hazard_multiplier", "must be in [0, 10000]");
  }
  for (int i = 0; i < s.outages_size(); ++i) {
    RETURN_IF_ERROR(prob(s.outages(i).fraction(),
                         absl::StrCat("outages[", i, "].fraction")));
  }
  const absl::Duration step = Or(s.step(), absl::Seconds(10));
  const absl::Duration hb =
      Or(s.behavior().heartbeat_interval(), absl::Seconds(60));
  if (step < absl::Seconds(1)) return Invalid("step", "must be >= 1s");
  if (hb < step) {
    return Invalid("behavior.heartbeat_interval", "must be >= step");
  }
  return absl::OkStatus();
}

absl::StatusOr<SimRun> Simulate(const Scenario& scenario, const Plan& plan_in,
                                const SimOptions& options) {
  RETURN_IF_ERROR(ValidateScenario(scenario));
  RETURN_IF_ERROR(ValidatePlan(plan_in));
  const absl::Time wall_start = absl::Now();
  // The baselines run the same plan through the same gate in shadow mode:
  // its halt rules never act, so their exposure path is ringfence's until
  // their own rule aborts the rollout.
  const Plan& plan = plan_in;
  const config::v1::SimBehavior& b = scenario.behavior();
  const SimEffect& effect = scenario.effect();
  const uint32_t n = static_cast<uint32_t>(scenario.fleet().hosts());
  const absl::Duration step = Or(scenario.step(), absl::Seconds(10));
  const absl::Duration hb = Or(b.heartbeat_interval(), absl::Seconds(60));
  const int phases = std::max<int>(1, static_cast<int>(hb / step));
  const double step_h = absl::ToDoubleHours(step);
  const absl::Duration max_duration =
      Or(scenario.max_duration(), absl::Hours(48));
  const absl::Duration warmup = Or(scenario.warmup(), 2 * hb);
  const double rr =
      effect.hazard_multiplier() == 0 ? 1 : effect.hazard_multiplier();
  const int64_t effect_delay_steps = FromProto(effect.delay()) / step;
  std::mt19937_64 rng(options.seed);
  std::uniform_real_distribution<double> uniform(0, 1);

  // ---- The fleet. ----
  std::vector<std::string> versions, platforms;
  std::vector<double> vcum, pcum, tcum;
  for (const auto& w : scenario.fleet().agent_versions()) {
    versions.push_back(w.value());
    vcum.push_back((vcum.empty() ? 0 : vcum.back()) +
                   std::max(0.0, w.weight()));
  }
  if (versions.empty()) {
    versions = {"7.11.0"};
    vcum = {1};
  }
  for (const auto& w : scenario.fleet().platforms()) {
    platforms.push_back(w.value());
    pcum.push_back((pcum.empty() ? 0 : pcum.back()) +
                   std::max(0.0, w.weight()));
  }
  if (platforms.empty()) {
    platforms = {"windows"};
    pcum = {1};
  }
  std::vector<std::string> tenants;
  ControllerOptions copts;
  for (const auto& t : scenario.fleet().tenants()) {
    tenants.push_back(t.name());
    tcum.push_back((tcum.empty() ? 0 : tcum.back()) +
                   std::max(0.0, t.weight()));
    Tenant* ct = copts.fleet.add_tenants();
    ct->set_name(t.name());
    ct->set_track(t.track());
  }
  if (tenants.empty()) {
    tenants = {"general"};
    tcum = {1};
  }
  const uint32_t dogfood = scenario.fleet().dogfood_hosts() == 0
                               ? 20
                               : scenario.fleet().dogfood_hosts();
  std::vector<uint8_t> flags(n, kOnline);
  std::vector<uint8_t> phase(n), version(n), platform(n), tenant(n);
  std::vector<uint32_t> applied_step(n, 0);
  for (uint32_t i = 0; i < n; ++i) {
    phase[i] = static_cast<uint8_t>(rng() % phases);
    version[i] = static_cast<uint8_t>(PickWeighted(vcum, uniform(rng)));
    platform[i] = static_cast<uint8_t>(PickWeighted(pcum, uniform(rng)));
    tenant[i] = static_cast<uint8_t>(PickWeighted(tcum, uniform(rng)));
    bool affected = true;
    if (effect.agent_versions_size() > 0) {
      affected =
          std::find(effect.agent_versions().begin(),
                    effect.agent_versions().end(),
                    versions[version[i]]) != effect.agent_versions().end();
    }
    if (affected && effect.platforms_size() > 0) {
      affected = std::find(effect.platforms().begin(), effect.platforms().end(),
                           platforms[platform[i]]) != effect.platforms().end();
    }
    if (affected) flags[i] |= kAffected;
  }
  // Offline hosts at the start, and their return steps.
  const double mean_offline_steps = std::max(
      1.0, absl::FDivDuration(Or(b.mean_offline_time(), absl::Hours(2)), step));
  auto offline_fraction_at = [&](int64_t s) {
    double f = b.offline_fraction();
    if (b.offline_daily_cycle()) {
      const double hours = absl::ToDoubleHours(s * step);
      f *= 1 + std::cos((hours - 3) / 24 * 2 * M_PI);
    }
    return std::min(f, 0.95);
  };
  std::exponential_distribution<double> offline_len(1.0 / mean_offline_steps);
  absl::flat_hash_map<int64_t, std::vector<uint32_t>> comeback;
  for (uint32_t i = 0; i < n; ++i) {
    if (uniform(rng) < offline_fraction_at(0)) {
      flags[i] &= ~kOnline;
      comeback[static_cast<int64_t>(offline_len(rng))].push_back(i);
    }
  }
  std::vector<uint32_t> exposed_hosts;  // hosts running the new release
  std::vector<std::vector<uint32_t>> by_phase(phases);
  for (uint32_t i = 0; i < n; ++i) by_phase[phase[i]].push_back(i);
  // Each host's first stage, from the same index and salt the controller
  // uses: hosts that no current stage selects and that do not run the release
  // would be told "baseline", so they skip the Assign call (the controller's
  // answer for them cannot change until the stage does).
  std::vector<int16_t> placed(n, -1);

  // ---- The controller. ----
  FakeClock clock(absl::FromUnixSeconds(1700000000));
  StorePtr store = NewMemoryStore();
  copts.expected_hosts = n;
  copts.enforce_halts = options.decider == Decider::kRingfence;
  ASSIGN_OR_RETURN(auto controller,
                   Controller::Create(store.get(), &clock, copts));
  for (const char* id : {kOld, kNew}) {
    Release r;
    r.set_id(id);
    r.set_content_type(kContentType);
    r.set_digest_sha256(std::string(64, id == kOld ? 'a' : 'b'));
    r.set_size_bytes(1);
    RETURN_IF_ERROR(controller->CreateRelease(r, "sim"));
  }

  // ---- Delivery queue (delay) and outages. ----
  const double mean_delay_steps =
      absl::FDivDuration(FromProto(b.mean_telemetry_delay()), step);
  std::exponential_distribution<double> delay_dist(
      mean_delay_steps > 0 ? 1.0 / mean_delay_steps : 1.0);
  absl::flat_hash_map<int64_t, std::vector<PendingEvent>> queue;
  const int64_t warmup_steps = warmup / step;
  auto in_outage = [&](uint32_t host, int64_t s) {
    const absl::Duration since_start = (s - warmup_steps) * step;
    for (int i = 0; i < scenario.outages_size(); ++i) {
      const auto& o = scenario.outages(i);
      const absl::Duration start = FromProto(o.start());
      if (since_start >= start &&
          since_start < start + FromProto(o.duration())) {
        // A fixed random subset per outage.
        const uint64_t h = MurmurHash64A(absl::StrCat(host, "/", i), 7);
        if (static_cast<double>(h % 1000000) < o.fraction() * 1e6) return true;
      }
    }
    return false;
  };
  int64_t cur = 0;
  SimRun run;
  auto emit = [&](uint32_t host, EventType type, bool new_release, bool clean) {
    if (b.telemetry_loss() > 0 && uniform(rng) < b.telemetry_loss()) return;
    if (in_outage(host, cur)) {
      ++run.outage_dropped_events;
      return;
    }
    const int64_t d =
        mean_delay_steps > 0 ? static_cast<int64_t>(delay_dist(rng) + 0.5) : 0;
    queue[cur + d].push_back({host, type, new_release, clean});
  };
  auto crash = [&](uint32_t host, bool by_effect) {
    ++run.crash_events;
    emit(host, EventType::kCrash, (flags[host] & kRunsNew) != 0, true);
    emit(host, EventType::kBoot, false, false);
    if (by_effect) flags[host] |= kHurt;
  };

  // ---- Shadow deciders. ----
  const double offline_hazard =
      b.offline_fraction() > 0
          ? b.offline_fraction() /
                ((1 - b.offline_fraction()) *
                 absl::ToDoubleHours(Or(b.mean_offline_time(), absl::Hours(2))))
          : 0;
  // The oracle watches the signal the effect produces: silence for boot
  // loops, crashes otherwise, with the true baseline rate of that signal.
  const bool silent_effect = effect.boot_loop() > 0;
  const bool apply_effect = silent_effect || effect.crash_on_apply() > 0;
  const double base_bad =
      std::max(1e-6, silent_effect ? offline_hazard : b.crash_per_host_hour());
  const double oracle_rr = apply_effect ? 1e6 : rr;
  PoissonWaldSprt oracle(std::max(oracle_rr, 1.0001), base_bad,
                         options.oracle_alpha, options.oracle_beta);
  // Effects at apply time (boot loop, crash on apply) are per-host
  // Bernoulli outcomes: the oracle is Wald's SPRT of p0 (a bad event within
  // the window by baseline chance) against p0 + the effect's probability,
  // counting a host once its window has passed.
  const int64_t window_steps =
      silent_effect
          ? std::max<int64_t>(
                1, FromProto(EffectivePolicy(plan_in, 0).silence_timeout()) /
                           step +
                       phases)
          : phases;
  const double window_h = static_cast<double>(window_steps) * step_h;
  const double p0 = std::min(0.5, std::max(1e-6, base_bad * window_h));
  const double p1 = std::min(
      0.999999,
      p0 + (silent_effect ? effect.boot_loop() : effect.crash_on_apply()));
  const double upper =
      std::log((1 - options.oracle_beta) / options.oracle_alpha);
  size_t windowed = 0;  // exposed_hosts[0..windowed) have passed their window
  uint64_t shadow_prev_bad = 0;
  double shadow_prev_hours = 0;
  int threshold_failures = 0;
  absl::Time next_measurement = absl::InfinitePast();

  run.seed = options.seed;
  std::string rollout_id;
  int64_t first_exposure_step = -1, halt_step = -1, end_step = -1;
  const int64_t max_steps = warmup_steps + max_duration / step;
  std::vector<TelemetryEvent> batch;
  HostInfo info;
  uint64_t hurt = 0;
  int current_stage = 0;
  bool terminal = false;
  const std::string old_id = kOld, new_id = kNew;

  {
    // Every host runs the old release already: it becomes the content
    // type's proven baseline the way a pre-ringfence release does.
    StartRolloutRequest req;
    req.rollout_id = "sim-baseline";
    req.release_id = kOld;
    req.plan = plan;
    req.allow_no_baseline = true;
    req.actor = "sim";
    req.reason = "the release every host runs";
    RETURN_IF_ERROR(controller->StartRollout(req).status());
    RETURN_IF_ERROR(controller
                        ->PromoteToCompletion(req.rollout_id, "sim",
                                              "adopt the running release")
                        .status());
  }
  for (cur = 0; cur < max_steps; ++cur) {
    clock.Advance(step);
    if (cur == warmup_steps) {
      StartRolloutRequest req;
      req.rollout_id = "sim";
      req.release_id = kNew;
      req.plan = plan;
      req.actor = "sim";
      req.reason = "simulation";
      ASSIGN_OR_RETURN(Rollout r, controller->StartRollout(req));
      rollout_id = r.id();
      const auto index = AudienceIndex::Build(plan, r.salt());
      const TenantTracks tracks(copts.fleet);
      HostInfo h;
      for (uint32_t i = 0; i < n; ++i) {
        h.host_id = HostId(i);
        h.labels.clear();
        if (i < dogfood) h.labels.push_back("ring:dogfood");
        placed[i] = static_cast<int16_t>(
            index->Place(h, tracks.TrackOf(tenants[tenant[i]])));
      }
      next_measurement = clock.Now() + options.threshold.interval;
    }
    // Offline churn: hosts coming back, hosts leaving.
    if (auto it = comeback.find(cur); it != comeback.end()) {
      for (uint32_t h : it->second) flags[h] |= kOnline;
      comeback.erase(it);
    }
    const double off_target = offline_fraction_at(cur);
    if (off_target > 0) {
      // Leave at the rate that keeps the offline fraction at its target.
      const double leave_p =
          off_target / ((1 - off_target) * mean_offline_steps);
      std::poisson_distribution<uint64_t> leaving(leave_p * n);
      for (uint64_t k = leaving(rng); k > 0; --k) {
        const uint32_t h = static_cast<uint32_t>(rng() % n);
        if (!(flags[h] & kOnline) || (flags[h] & kDead)) continue;
        flags[h] &= ~kOnline;
        comeback[cur + 1 + static_cast<int64_t>(offline_len(rng))].push_back(h);
      }
    }
    {
      uint64_t online = 0;
      if (cur % 30 == 0) {  // sampled every 30 steps: O(n)
        for (uint32_t h = 0; h < n; ++h) {
          online += (flags[h] & kOnline) && !(flags[h] & kDead);
        }
        run.online_host_hours += static_cast<double>(online) * step_h * 30;
      }
    }
    // Polls and heartbeats of this phase.
    const int ph = static_cast<int>(cur % phases);
    for (uint32_t h : by_phase[ph]) {
      const uint8_t f = flags[h];
      if (!(f & kOnline) || (f & kDead)) continue;
      const bool may_change =
          (f & kRunsNew) ||
          (placed[h] >= 0 && placed[h] <= current_stage && !terminal);
      if (!rollout_id.empty() && may_change && !in_outage(h, cur)) {
        info.host_id = HostId(h);
        info.tenant = tenants[tenant[h]];
        info.labels.clear();
        if (h < dogfood) info.labels.push_back("ring:dogfood");
        info.agent_version = versions[version[h]];
        info.platform = platforms[platform[h]];
        const Assignment a = controller->Assign(info, kContentType);
        const bool want_new = a.release != nullptr && a.release->id() == new_id;
        if (want_new && !(f & kRunsNew)) {
          emit(h, EventType::kApplying, true, true);
          if (first_exposure_step < 0) first_exposure_step = cur;
          flags[h] |= kRunsNew | kEverExposed;
          applied_step[h] = static_cast<uint32_t>(cur);
          exposed_hosts.push_back(h);
          if (f & kAffected) {
            if (effect.boot_loop() > 0 && uniform(rng) < effect.boot_loop()) {
              flags[h] |= kDead | kHurt;
              ++hurt;
              continue;
            }
            if (effect.crash_on_apply() > 0 &&
                uniform(rng) < effect.crash_on_apply()) {
              if (!(flags[h] & kHurt)) ++hurt;
              crash(h, true);
            }
          }
          emit(h, EventType::kApplied, true, true);
        } else if (!want_new && (f & kRunsNew) && a.release != nullptr) {
          flags[h] &= ~kRunsNew;  // reverted
          emit(h, EventType::kApplying, false, true);
          emit(h, EventType::kApplied, false, true);
        }
      }
      emit(h, EventType::kHeartbeat, (flags[h] & kRunsNew) != 0, true);
    }
    // Crashes: baseline on every online host, excess on affected hosts
    // running the release (after the effect's delay).
    double hazard = b.crash_per_host_hour();
    if (b.crash_daily_cycle()) {
      hazard *=
          1 + 0.5 * std::sin(absl::ToDoubleHours(cur * step) / 24 * 2 * M_PI);
    }
    if (hazard > 0) {
      std::poisson_distribution<uint64_t> baseline(hazard * step_h * n);
      for (uint64_t k = baseline(rng); k > 0; --k) {
        const uint32_t h = static_cast<uint32_t>(rng() % n);
        if ((flags[h] & kOnline) && !(flags[h] & kDead)) crash(h, false);
      }
      if (rr > 1 && !exposed_hosts.empty()) {
        std::poisson_distribution<uint64_t> excess(
            hazard * (rr - 1) * step_h *
            static_cast<double>(exposed_hosts.size()));
        for (uint64_t k = excess(rng); k > 0; --k) {
          const uint32_t h = exposed_hosts[rng() % exposed_hosts.size()];
          const uint8_t f = flags[h];
          if (!(f & kRunsNew) || !(f & kAffected) || !(f & kOnline) ||
              (f & kDead)) {
            continue;
          }
          if (cur - static_cast<int64_t>(applied_step[h]) < effect_delay_steps)
            continue;
          if (!(f & kHurt)) ++hurt;
          crash(h, true);
        }
      }
    }
    for (uint32_t h = 0; h < std::min<uint32_t>(b.flapping_hosts(), n); ++h) {
      // Flapping hosts are the first hosts: a fixed set whatever the seed.
      if (phase[h] == ph && (flags[h] & kOnline) && !(flags[h] & kDead)) {
        crash(h, false);
      }
    }
    // Deliver what is due.
    if (auto it = queue.find(cur); it != queue.end()) {
      batch.clear();
      for (const PendingEvent& p : it->second) {
        TelemetryEvent e;
        e.host_id = HostId(p.host);
        e.type = p.type;
        if (p.type != EventType::kCrash && p.type != EventType::kBoot) {
          e.release_id = p.new_release ? new_id : old_id;
        }
        e.clean = p.clean;
        batch.push_back(std::move(e));
        if (batch.size() == 100000) {
          RETURN_IF_ERROR(controller->Ingest(batch));
          batch.clear();
        }
      }
      if (!batch.empty()) RETURN_IF_ERROR(controller->Ingest(batch));
      queue.erase(it);
    }
    if (rollout_id.empty()) continue;
    absl::Status tick = controller->Tick();
    if (!tick.ok() && !absl::IsFailedPrecondition(tick)) return tick;
    ASSIGN_OR_RETURN(RolloutStatus st, controller->GetRollout(rollout_id));
    const Rollout& r = st.rollout;
    // Shadow deciders.
    if (options.decider != Decider::kRingfence && !IsTerminal(r.state())) {
      uint64_t bad = 0, any_bad = 0;
      for (const SignalCounts& c : st.telemetry.signal_counts) {
        if (c.signal == kSignalCrash || c.signal == kSignalSilent) {
          any_bad += c.treatment_affected;
        }
        if (c.signal == (silent_effect ? kSignalSilent : kSignalCrash)) {
          bad += c.treatment_affected;
        }
      }
      std::string why;
      if (options.decider == Decider::kOracle && apply_effect) {
        while (
            windowed < exposed_hosts.size() &&
            cur - static_cast<int64_t>(applied_step[exposed_hosts[windowed]]) >=
                window_steps) {
          ++windowed;
        }
        const double trials = std::max<double>(static_cast<double>(windowed),
                                               static_cast<double>(bad));
        const double llr =
            static_cast<double>(bad) * std::log(p1 / p0) +
            (trials - static_cast<double>(bad)) * std::log((1 - p1) / (1 - p0));
        if (llr >= upper) {
          why = absl::StrFormat("oracle SPRT: LLR %.2f (%d bad of %d hosts)",
                                llr, bad, windowed);
        }
      } else if (options.decider == Decider::kOracle) {
        const double hours = st.telemetry.treatment_host_hours;
        if (oracle.Observe(bad - shadow_prev_bad,
                           std::max(0.0, hours - shadow_prev_hours)) ==
            SprtOutcome::kRejectNull) {
          why = absl::StrFormat("oracle SPRT: LLR %.2f", oracle.llr());
        }
        shadow_prev_hours = hours;
        shadow_prev_bad = bad;
      } else if (clock.Now() >= next_measurement) {
        next_measurement = clock.Now() + options.threshold.interval;
        const uint64_t exposed = st.telemetry.treatment_hosts;
        if (exposed >= options.threshold.min_exposed &&
            static_cast<double>(any_bad) / static_cast<double>(exposed) >
                options.threshold.max_fraction) {
          ++threshold_failures;
        }
        if (threshold_failures > options.threshold.failure_limit) {
          why = absl::StrFormat("threshold rule: %d failed measurements",
                                threshold_failures);
        }
      }
      if (!why.empty()) {
        RETURN_IF_ERROR(controller->Abort(rollout_id, "sim", why).status());
      }
    }
    ASSIGN_OR_RETURN(st, controller->GetRollout(rollout_id));
    const Rollout& now = st.rollout;
    current_stage = static_cast<int>(now.stage());
    run.tracked_hosts = st.telemetry.tracked_hosts;
    terminal = IsTerminal(now.state());
    const int64_t rel_step = cur - warmup_steps;
    if (options.timeline &&
        rel_step % std::max<int64_t>(1, absl::Minutes(1) / step) == 0) {
      TimelinePoint p;
      p.t_s = absl::ToDoubleSeconds(rel_step * step);
      p.exposed = st.telemetry.treatment_hosts;
      p.hurt = hurt;
      p.state = std::string(RolloutStateName(now.state()));
      p.stage = StageName(plan, static_cast<int>(now.stage()));
      p.decision = now.last_decision().summary();
      run.timeline.push_back(std::move(p));
    }
    if (halt_step < 0 && (now.state() == config::v1::HALTED ||
                          now.state() == config::v1::ABORTED)) {
      halt_step = cur;
      run.halted = true;
      run.halt_reason = now.reason();
      run.exposed_at_halt = exposed_hosts.size();
      run.hurt_at_halt = hurt;
      if (first_exposure_step >= 0) {
        run.time_to_halt_s =
            absl::ToDoubleSeconds((cur - first_exposure_step) * step);
      }
      end_step = cur + 2 * phases;  // let hosts revert, then stop
    }
    if (now.state() == config::v1::COMPLETED && end_step < 0) {
      run.completed = true;
      if (first_exposure_step >= 0) {
        run.time_to_completion_s =
            absl::ToDoubleSeconds((cur - first_exposure_step) * step);
      }
      end_step = cur;
    }
    if (end_step >= 0 && cur >= end_step) break;
  }
  run.false_halt = run.halted && !HasEffect(scenario);
  run.hurt_total = hurt;
  run.exposed_total = exposed_hosts.size();
  run.wall_seconds = absl::ToDoubleSeconds(absl::Now() - wall_start);
  return run;
}

SimSummary Summarize(const std::vector<SimRun>& runs) {
  SimSummary s;
  s.runs = runs.size();
  if (runs.empty()) return s;
  std::vector<double> tth;
  double completion = 0;
  uint64_t completed = 0;
  for (const SimRun& r : runs) {
    s.halted_fraction += r.halted;
    s.false_halt_rate += r.false_halt;
    s.hosts_hurt_mean += static_cast<double>(r.hurt_total);
    if (r.halted) {
      s.hosts_hurt_at_halt_mean += static_cast<double>(r.hurt_at_halt);
      s.hosts_exposed_at_halt_mean += static_cast<double>(r.exposed_at_halt);
      if (r.time_to_halt_s >= 0) tth.push_back(r.time_to_halt_s);
    }
    if (r.completed) {
      completion += r.time_to_completion_s;
      ++completed;
    }
  }
  const double n = static_cast<double>(runs.size());
  const double halted = s.halted_fraction;
  s.halted_fraction /= n;
  s.false_halt_rate /= n;
  s.hosts_hurt_mean /= n;
  if (halted > 0) {
    s.hosts_hurt_at_halt_mean /= halted;
    s.hosts_exposed_at_halt_mean /= halted;
  }
  if (!tth.empty()) {
    std::sort(tth.begin(), tth.end());
    double sum = 0;
    for (double t : tth) sum += t;
    s.time_to_halt_s_mean = sum / static_cast<double>(tth.size());
    auto pct = [&](double q) {
      return tth[std::min(
          tth.size() - 1,
          static_cast<size_t>(q * static_cast<double>(tth.size())))];
    };
    s.time_to_halt_s_p50 = pct(0.5);
    s.time_to_halt_s_p95 = pct(0.95);
  }
  if (completed > 0) s.time_to_completion_s_mean = completion / completed;
  return s;
}

std::string SummaryJson(const SimSummary& s) {
  return absl::StrFormat(
      "{\"runs\": %d, \"halted_fraction\": %.6g, \"false_halt_rate\": %.6g, "
      "\"hosts_hurt_mean\": %.6g, \"hosts_hurt_at_halt_mean\": %.6g, "
      "\"hosts_exposed_at_halt_mean\": %.6g, \"time_to_halt_s_mean\": %.6g, "
      "\"time_to_halt_s_p50\": %.6g, \"time_to_halt_s_p95\": %.6g, "
      "\"time_to_completion_s_mean\": %.6g}",
      s.runs, s.halted_fraction, s.false_halt_rate, s.hosts_hurt_mean,
      s.hosts_hurt_at_halt_mean, s.hosts_exposed_at_halt_mean,
      s.time_to_halt_s_mean, s.time_to_halt_s_p50, s.time_to_halt_s_p95,
      s.time_to_completion_s_mean);
}

std::string RunJson(const SimRun& r) {
  return absl::StrFormat(
      "{\"seed\": %d, \"halted\": %s, \"false_halt\": %s, \"completed\": %s, "
      "\"time_to_halt_s\": %.6g, \"time_to_completion_s\": %.6g, "
      "\"exposed_at_halt\": %d, \"hurt_at_halt\": %d, \"hurt_total\": %d, "
      "\"exposed_total\": %d, \"wall_seconds\": %.3f}",
      r.seed, r.halted ? "true" : "false", r.false_halt ? "true" : "false",
      r.completed ? "true" : "false", r.time_to_halt_s, r.time_to_completion_s,
      r.exposed_at_halt, r.hurt_at_halt, r.hurt_total, r.exposed_total,
      r.wall_seconds);
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
      absl::StrCat("rehearse: unknown preset \"", preset,
                   "\" (boot-loop, crash-on-apply:<p>, crash-rate:<RR>)"));
}

}  // namespace ringfence
