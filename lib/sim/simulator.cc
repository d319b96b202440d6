// The fleet simulator (sim.h): the rollout phase in steps, the oracle, and
// the horizon after the rollout's end.
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "fleet.h"
#include "ringfence/assign.h"
#include "ringfence/controller.h"
#include "ringfence/gate.h"
#include "ringfence/hash.h"
#include "ringfence/policy.h"
#include "ringfence/sim.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

using config::v1::SimEffect;
using config::v1::SimOutage;
using internal::SimHosts;

constexpr char kContentType[] = "sim/content";
constexpr char kOld[] = "sim-old";
constexpr char kNew[] = "sim-new";
constexpr int kEventTypes = 7;  // EventType values 1..6
constexpr int64_t kNever = INT64_MAX / 4;
constexpr size_t kMaxBatch = 100000;

// Per-host state.
enum : uint8_t {
  kOnline = 1,
  kRunsNew = 2,
  kDead = 4,  // boot-looping
  kHurt = 8,
  kEverExposed = 16,
  kHung = 32,
  kBroken = 64,        // the release broke its telemetry
  kApplyFailed = 128,  // the release fails to load on it
};

// PendingEvent bits.
enum : uint8_t {
  kEvNew = 1,     // about / running the new release
  kEvClean = 2,   // boot: clean shutdown before it
  kEvOracle = 4,  // counts in the oracle's Poisson component of its type
};

// Oracle trial bits.
enum : uint8_t {
  kSeenAny = 1,
  kSeenApplied = 2,
  kSeenCrash = 4,
};

struct PendingEvent {
  uint32_t host;
  uint32_t occ;  // step it happened
  EventType type;
  uint8_t bits;
  uint16_t signal;
};

absl::Duration Or(const google::protobuf::Duration& d, absl::Duration def) {
  const absl::Duration v = FromProto(d);
  return v <= absl::ZeroDuration() ? def : v;
}

uint64_t Mix(uint64_t x) {  // SplitMix64's finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

double CycleAt(const config::v1::SimCycle& c, int64_t local_s) {
  double m = 1;
  if (c.daily_amplitude() > 0) {
    const double hour =
        static_cast<double>(((local_s % 86400) + 86400) % 86400) / 3600;
    m *= 1 +
         c.daily_amplitude() * std::cos((hour - c.peak_hour()) / 24 * 2 * M_PI);
  }
  if (c.weekend_factor() > 0 && c.weekend_factor() != 1) {
    const int64_t days = (local_s >= 0 ? local_s : local_s - 86399) / 86400;
    const int dow = static_cast<int>(((days + 4) % 7 + 7) % 7);  // 0 = Sunday
    if (dow == 0 || dow == 6) m *= c.weekend_factor();
  }
  return std::max(0.0, m);
}

int EventIndex(absl::string_view name) {
  if (name == "applying") return static_cast<int>(EventType::kApplying);
  if (name == "applied") return static_cast<int>(EventType::kApplied);
  if (name == "heartbeat") return static_cast<int>(EventType::kHeartbeat);
  if (name == "crash") return static_cast<int>(EventType::kCrash);
  if (name == "boot") return static_cast<int>(EventType::kBoot);
  return static_cast<int>(EventType::kSignal);
}

class Sim {
 public:
  Sim(const Scenario& s, const Plan& plan, const SimOptions& o)
      : sc_(s), plan_(plan), opt_(o), rng_(o.seed) {}

  absl::StatusOr<SimRun> Run();

 private:
  // ---- Setup ----
  void Setup();
  void BuildTables();
  // ---- Rollout phase ----
  absl::Status Step();
  void StartRollout();
  void OnStageStarted(int stage);
  void UpdateWindows();
  void Churn();
  void Poll(uint32_t h, bool heartbeat);
  void Grant(uint32_t h);
  void Revert(uint32_t h);
  void Boot(uint32_t h);
  void Crash(uint32_t h, bool by_effect);
  void Hurt(uint32_t h);
  void Hazards();
  void OracleMass();
  absl::Status Deliver();
  absl::Status Decide();
  void Emit(uint32_t h, EventType type, uint8_t bits, uint16_t signal = 0);
  // ---- Horizon ----
  void Horizon();

  // ---- Helpers ----
  absl::string_view Id(uint32_t h) const {
    return absl::string_view(
        &ids_[static_cast<size_t>(h) * internal::kHostIdLength],
        internal::kHostIdLength);
  }
  bool Affected(uint32_t h) const {
    return hosts_.traits[h] & internal::kTraitAffected;
  }
  bool EffectActive(uint32_t h, int64_t s) const {
    return s >= static_cast<int64_t>(load_step_[h]) + delay_steps_ &&
           s >= trigger_step_;
  }
  bool FlapperDown(uint32_t h, int64_t s) const {
    if (!(hosts_.traits[h] & internal::kTraitFlapper)) return false;
    const int64_t period = flap_up_ + flap_down_;
    return (s + static_cast<int64_t>(Mix(h ^ salt_) % period)) % period >=
           flap_up_;
  }
  // Outages active now covering h that block telemetry / assignments.
  uint8_t OutageMask(uint32_t h) const {
    return outage_mask_.empty() ? 0 : outage_mask_[h];
  }
  bool TelemetryBlocked(uint32_t h) const {
    return (OutageMask(h) & tel_block_) != 0;
  }
  bool AssignBlocked(uint32_t h) const {
    return (OutageMask(h) & assign_block_) != 0;
  }
  bool Up() const { return controller_ != nullptr; }
  double CrashCycle(uint32_t h, int64_t s) const {
    const auto& t = crash_cum_[hosts_.tz[h]];
    return t[s + 1] - t[s];
  }
  double LeaveProb(int z, int64_t s) const {
    return leave_cum_[z][s + 1] - leave_cum_[z][s];
  }
  // Largest delay (steps) of an event of `type` from h.
  int64_t MaxDelay(uint32_t h, int type) const {
    return max_delay_[hosts_.lag_class.empty() ? 0 : hosts_.lag_class[h]][type];
  }
  bool OracleAtRisk(uint32_t h) const;
  void OracleAdd(int64_t at, double llr) { oracle_pending_[at] += llr; }

  const Scenario& sc_;
  const Plan& plan_;
  const SimOptions opt_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0, 1};
  uint64_t salt_ = 0;

  // Time.
  absl::Duration step_, hb_;
  double step_h_ = 0, step_s_ = 0;
  int64_t phases_ = 1, warmup_steps_ = 0, max_steps_ = 0, horizon_steps_ = 0;
  int64_t table_steps_ = 0, cur_ = 0;
  int64_t start_unix_s_ = 0;

  // The fleet.
  SimHosts hosts_;
  std::string ids_;
  std::vector<uint8_t> flags_;
  std::vector<uint32_t> load_step_;
  std::vector<int16_t> placed_;
  std::vector<uint16_t> slot_;
  std::vector<std::vector<uint32_t>> by_phase_;
  std::vector<uint32_t> exposed_, chronic_;
  std::vector<int32_t> skew_ms_;
  absl::flat_hash_map<int64_t, std::vector<uint32_t>> comeback_, wake_, boots_;
  std::vector<uint32_t> checkins_, checkins_next_;
  std::vector<std::vector<double>> crash_cum_, leave_cum_;  // per time zone
  double mean_offline_steps_ = 1;

  // Behaviour and effect.
  double base_ = 0, rr_ = 1, loss_ = 0, chronic_rate_ = 6, eta_ = 0;
  int64_t delay_steps_ = 0, trigger_step_ = 0, boot_steps_ = 1, hang_steps_ = 1;
  int64_t flap_up_ = 1, flap_down_ = 0;
  std::vector<std::string> signal_names_;
  std::vector<double> signal_base_, signal_mult_;
  bool report_only_exposed_ = false;

  // Telemetry delivery.
  double jitter_mean_steps_ = 0;
  int64_t fixed_lag_steps_ = 0, batch_steps_ = 0;
  std::vector<int64_t> host_lag_steps_;
  int64_t type_lag_steps_[kEventTypes] = {};
  std::vector<std::array<int64_t, kEventTypes>> max_delay_;
  absl::flat_hash_map<int64_t, std::vector<PendingEvent>> queue_;
  // Per host: its events in queue_, i.e. not delivered yet. A host says so
  // when it checks in (HostInfo::telemetry_pending), as ringfence-agent
  // does with its spool's backlog.
  std::vector<uint32_t> backlog_;
  // Hosts whose check-in since the controller (re)started admitted them to
  // the rollout's population (its control arm): every host checks in; a
  // host with nothing to change is asked once, not at every poll.
  std::vector<bool> admitted_;
  std::vector<PendingEvent> due_now_;
  std::vector<TelemetryEventView> batch_;
  std::vector<uint32_t> batch_hosts_;

  // Outages and restarts (start/end steps; kNever while unresolved).
  std::vector<uint8_t> outage_mask_;
  std::vector<int64_t> outage_start_, outage_end_;
  uint8_t tel_block_ = 0, assign_block_ = 0, drop_ = 0;
  std::vector<int64_t> restart_at_, restart_until_;
  int64_t down_until_ = -1;

  // The controller.
  FakeClock clock_;
  StorePtr store_;
  ControllerOptions copts_;
  std::unique_ptr<Controller> controller_;
  std::string rollout_id_;
  int current_stage_ = 0;
  bool terminal_ = false;
  // When the rollout completed (step), or -1; a completed rollout under its
  // post-completion watch is not terminal until the watch ends.
  int64_t completed_step_ = -1;
  std::vector<int64_t> stage_start_;
  std::unique_ptr<const AudienceIndex> index_;

  // Deciders.
  bool oracle_ = false, oracle_done_ = false, harmful_ = false;
  double oracle_llr_ = 0, oracle_upper_ = 0, oracle_lower_ = 0;
  double oracle_crash_rr_ = 0;  // 0 = component off
  bool oracle_target_ = false;
  std::vector<double> oracle_signal_mult_;  // per signal; 0 = off
  double p_apply_crash_ = 0, p_boot_ = 0, p_fail_ = 0, p_break_ = 0;
  bool oracle_trials_ = false;
  std::map<int64_t, double> oracle_pending_;
  std::map<int64_t, std::vector<uint32_t>> trial_close_;
  absl::flat_hash_map<uint32_t, std::pair<uint32_t, uint8_t>> trials_;
  int threshold_failures_ = 0;
  absl::Time next_measurement_ = absl::InfinitePast();

  // Results.
  SimRun run_;
  uint64_t hurt_ = 0;
  int64_t first_exposure_step_ = -1;
  HostInfo info_;
};

// ---- Setup ----------------------------------------------------------------

void Sim::Setup() {
  const auto& b = sc_.behavior();
  const SimEffect& e = sc_.effect();
  salt_ = Mix(opt_.seed * 0x51ed27a3ULL + 17);
  step_ = Or(sc_.step(), absl::Seconds(10));
  hb_ = Or(b.heartbeat_interval(), absl::Seconds(60));
  step_h_ = absl::ToDoubleHours(step_);
  step_s_ = absl::ToDoubleSeconds(step_);
  phases_ = std::max<int64_t>(1, hb_ / step_);
  warmup_steps_ = std::max<int64_t>(
      1, sc_.has_warmup() ? FromProto(sc_.warmup()) / step_ : 2 * phases_);
  max_steps_ = Or(sc_.max_duration(), absl::Hours(48)) / step_;
  const absl::Duration horizon = opt_.horizon >= absl::ZeroDuration()
                                     ? opt_.horizon
                                 : sc_.has_horizon() ? FromProto(sc_.horizon())
                                                     : absl::Hours(24);
  horizon_steps_ = horizon / step_;
  table_steps_ = warmup_steps_ + max_steps_ + horizon_steps_ + 4;
  start_unix_s_ =
      sc_.has_start_time() ? sc_.start_time().seconds() : 1700000000;
  clock_.Set(absl::FromUnixSeconds(start_unix_s_));

  base_ = b.crash_per_host_hour();
  rr_ = e.hazard_multiplier() == 0 ? 1 : e.hazard_multiplier();
  loss_ = b.telemetry_loss();
  chronic_rate_ = b.chronic_crashers().per_host_hour() > 0
                      ? b.chronic_crashers().per_host_hour()
                      : 6;
  eta_ = e.hang_per_host_hour();
  delay_steps_ = FromProto(e.delay()) / step_;
  trigger_step_ =
      (e.trigger_at().seconds() > 0 || !e.trigger_stage().empty()) ? kNever : 0;
  boot_steps_ =
      std::max<int64_t>(1, Or(e.boot_interval(), absl::Minutes(2)) / step_);
  hang_steps_ =
      std::max<int64_t>(1, Or(e.hang_duration(), absl::Minutes(30)) / step_);
  flap_up_ =
      std::max<int64_t>(1, Or(b.flappers().up(), absl::Minutes(10)) / step_);
  flap_down_ =
      std::max<int64_t>(1, Or(b.flappers().down(), absl::Minutes(3)) / step_);
  for (const auto& sig : b.signals()) {
    signal_names_.push_back(sig.name());
    signal_base_.push_back(sig.per_host_hour());
    double m = 1;
    for (const auto& se : e.signals()) {
      if (se.name() == sig.name() && se.multiplier() != 0) m = se.multiplier();
    }
    signal_mult_.push_back(m);
  }
  report_only_exposed_ = b.telemetry().report_only_when_exposed();

  // Delays, in steps.
  const auto& t = b.telemetry();
  jitter_mean_steps_ = FromProto(b.mean_telemetry_delay()) / step_;
  fixed_lag_steps_ = FromProto(t.fixed_lag()) / step_;
  batch_steps_ = FromProto(t.batch_interval()) / step_;
  for (const auto& l : t.host_lags()) {
    host_lag_steps_.push_back(FromProto(l.lag()) / step_);
  }
  if (host_lag_steps_.empty()) host_lag_steps_.push_back(0);
  for (const auto& l : t.event_lags()) {
    type_lag_steps_[EventIndex(l.event())] = FromProto(l.lag()) / step_;
  }
  const int64_t jitter_cap =
      static_cast<int64_t>(std::ceil(10 * jitter_mean_steps_));
  for (int64_t lag : host_lag_steps_) {
    std::array<int64_t, kEventTypes> m{};
    for (int ty = 0; ty < kEventTypes; ++ty) {
      m[ty] = fixed_lag_steps_ + lag + type_lag_steps_[ty] + jitter_cap +
              std::max<int64_t>(0, batch_steps_ - 1) + 1;
    }
    max_delay_.push_back(m);
  }

  // The fleet.
  hosts_ = internal::DrawFleet(sc_, rng_);
  const uint32_t n = hosts_.n;
  ids_.resize(static_cast<size_t>(n) * internal::kHostIdLength);
  for (uint32_t i = 0; i < n; ++i) {
    internal::WriteHostId(
        i, &ids_[static_cast<size_t>(i) * internal::kHostIdLength]);
  }
  flags_.assign(n, kOnline);
  backlog_.assign(n, 0);
  admitted_.assign(n, false);
  load_step_.assign(n, 0);
  placed_.assign(n, -1);
  for (uint32_t i = 0; i < n; ++i) {
    if (hosts_.traits[i] & internal::kTraitChronic) chronic_.push_back(i);
  }
  // Heartbeat phases: a random permutation cut into equal slots, so every
  // seed has its own phases and its own order within a slot.
  std::vector<uint32_t> perm(n);
  for (uint32_t i = 0; i < n; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng_);
  by_phase_.assign(phases_, {});
  slot_.assign(n, 0);
  for (uint32_t j = 0; j < n; ++j) {
    const int64_t ph = static_cast<int64_t>(j) * phases_ / n;
    by_phase_[ph].push_back(perm[j]);
    slot_[perm[j]] = static_cast<uint16_t>(ph);
  }
  if (t.clock_skew().seconds() > 0 || t.clock_skew().nanos() > 0) {
    std::normal_distribution<double> skew(
        0, absl::ToDoubleMilliseconds(FromProto(t.clock_skew())));
    skew_ms_.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      skew_ms_[i] = static_cast<int32_t>(std::clamp(skew(rng_), -2e9, 2e9));
    }
  }
  // Outage membership, drawn per seed.
  if (sc_.outages_size() > 0) {
    outage_mask_.assign(n, 0);
    for (int o = 0; o < sc_.outages_size(); ++o) {
      const SimOutage& out = sc_.outages(o);
      std::vector<uint8_t> region_ok(hosts_.regions.size(), 0);
      for (size_t r = 0; r < hosts_.regions.size(); ++r) {
        region_ok[r] = out.regions().empty() ||
                       std::find(out.regions().begin(), out.regions().end(),
                                 hosts_.regions[r]) != out.regions().end();
      }
      const double frac = out.fraction() == 0 ? 1 : out.fraction();
      for (uint32_t i = 0; i < n; ++i) {
        if (region_ok[hosts_.region[i]] && uniform_(rng_) < frac) {
          outage_mask_[i] |= static_cast<uint8_t>(1u << o);
        }
      }
    }
  }
  outage_start_.assign(sc_.outages_size(), kNever);
  outage_end_.assign(sc_.outages_size(), kNever);
  restart_at_.assign(sc_.restarts_size(), kNever);
  restart_until_.assign(sc_.restarts_size(), kNever);
  stage_start_.assign(plan_.stages_size() + 1, -1);

  BuildTables();
  // Offline at the start.
  mean_offline_steps_ = std::max(
      1.0,
      absl::FDivDuration(Or(b.mean_offline_time(), absl::Hours(2)), step_));
  std::exponential_distribution<double> off_len(1.0 / mean_offline_steps_);
  if (b.offline_fraction() > 0) {
    for (uint32_t i = 0; i < n; ++i) {
      const double f = std::min(
          0.95,
          b.offline_fraction() *
              CycleAt(b.offline_cycle(),
                      start_unix_s_ +
                          static_cast<int64_t>(
                              hosts_.tz_offsets_hours[hosts_.tz[i]] * 3600)));
      if (uniform_(rng_) < f) {
        flags_[i] &= ~kOnline;
        comeback_[static_cast<int64_t>(off_len(rng_))].push_back(i);
      }
    }
  }

  // Ground truth: can the release hurt a host of this fleet?
  bool reachable_affected = false;
  for (uint32_t i = 0; i < n && !reachable_affected; ++i) {
    reachable_affected =
        Affected(i) && !(hosts_.traits[i] & internal::kTraitPinned);
  }
  harmful_ = CanHurt(sc_) && reachable_affected;

  // The controller.
  copts_.fleet = hosts_.fleet_config;
  copts_.expected_hosts = n;
  copts_.enforce_halts = opt_.decider == Decider::kRingfence;
  store_ = NewMemoryStore();

  // The oracle.
  oracle_ = opt_.decider == Decider::kOracle;
  const double alpha = opt_.oracle_alpha > 0
                           ? opt_.oracle_alpha
                           : EffectivePolicy(plan_, 0).alpha();
  const double beta = opt_.oracle_beta;
  oracle_upper_ = std::log((1 - beta) / alpha);
  oracle_lower_ = std::log(beta / (1 - alpha));
  oracle_signal_mult_.assign(signal_names_.size(), 0);
  if (harmful_) {
    if (rr_ != 1 && base_ > 0) oracle_crash_rr_ = rr_;
    for (size_t s = 0; s < signal_names_.size(); ++s) {
      if (signal_mult_[s] != 1 && signal_base_[s] > 0) {
        oracle_signal_mult_[s] = signal_mult_[s];
      }
    }
    p_apply_crash_ = e.crash_on_apply();
    p_boot_ = e.boot_loop();
    p_fail_ = e.apply_failure();
    p_break_ = e.breaks_telemetry();
    oracle_trials_ =
        p_apply_crash_ > 0 || p_boot_ > 0 || p_fail_ > 0 || p_break_ > 0;
  } else {
    oracle_target_ = true;
    oracle_crash_rr_ = base_ > 0 ? opt_.oracle_target_rr : 0;
  }
}

void Sim::BuildTables() {
  const auto& b = sc_.behavior();
  const double f = b.offline_fraction();
  const double mean_off = std::max(
      1.0,
      absl::FDivDuration(Or(b.mean_offline_time(), absl::Hours(2)), step_));
  const size_t zones = hosts_.tz_offsets_hours.size();
  crash_cum_.assign(zones, std::vector<double>(table_steps_ + 1, 0));
  leave_cum_.assign(zones, std::vector<double>(table_steps_ + 1, 0));
  for (size_t z = 0; z < zones; ++z) {
    const int64_t off = static_cast<int64_t>(hosts_.tz_offsets_hours[z] * 3600);
    for (int64_t k = 0; k < table_steps_; ++k) {
      const int64_t local =
          start_unix_s_ + off + static_cast<int64_t>(k * step_s_);
      crash_cum_[z][k + 1] = crash_cum_[z][k] + CycleAt(b.crash_cycle(), local);
      double leave = 0;
      if (f > 0) {
        const double fk = std::min(0.95, f * CycleAt(b.offline_cycle(), local));
        leave = fk / ((1 - fk) * mean_off);
      }
      leave_cum_[z][k + 1] = leave_cum_[z][k] + leave;
    }
  }
}

// ---- The rollout phase ----------------------------------------------------

absl::StatusOr<SimRun> Sim::Run() {
  const absl::Time wall_start = absl::Now();
  Setup();
  ASSIGN_OR_RETURN(controller_,
                   Controller::Create(store_.get(), &clock_, copts_));
  for (const char* id : {kOld, kNew}) {
    Release r;
    r.set_id(id);
    r.set_content_type(kContentType);
    r.set_digest_sha256(std::string(64, id == kOld ? 'a' : 'b'));
    r.set_size_bytes(1);
    RETURN_IF_ERROR(controller_->CreateRelease(r, "sim"));
  }
  {
    // Every host runs the old release already: it becomes the content
    // type's proven baseline the way a pre-ringfence release does.
    StartRolloutRequest req;
    req.rollout_id = "sim-baseline";
    req.release_id = kOld;
    req.plan = plan_;
    req.allow_no_baseline = true;
    req.actor = "sim";
    req.reason = "the release every host runs";
    RETURN_IF_ERROR(controller_->StartRollout(req).status());
    RETURN_IF_ERROR(controller_
                        ->PromoteToCompletion(req.rollout_id, "sim",
                                              "adopt the running release")
                        .status());
  }
  run_.seed = opt_.seed;
  run_.decider = opt_.decider;
  run_.harmful = harmful_;
  const int64_t last = warmup_steps_ + max_steps_;
  bool ended = false;
  for (cur_ = 1; cur_ <= last; ++cur_) {
    clock_.Advance(step_);
    RETURN_IF_ERROR(Step());
    if (terminal_) {
      ended = true;
      break;
    }
  }
  if (!ended) {
    cur_ = std::min(cur_, last);
    if (completed_step_ >= 0) {  // completed; its watch outlasted the run
      run_.outcome = SimOutcome::kCompleted;
      run_.completed = true;
      run_.end_s =
          absl::ToDoubleSeconds((completed_step_ - warmup_steps_) * step_);
    } else {
      run_.outcome = SimOutcome::kStalled;
      run_.end_s = absl::ToDoubleSeconds((cur_ - warmup_steps_) * step_);
    }
    run_.stage = StageName(plan_, current_stage_);
  }
  run_.exposed_at_end = exposed_.size();
  run_.hurt_at_end = hurt_;
  run_.false_halt = run_.halted && !harmful_;
  run_.oracle_llr = oracle_llr_;
  Horizon();
  run_.hurt_total = hurt_;
  run_.wall_seconds = absl::ToDoubleSeconds(absl::Now() - wall_start);
  return run_;
}

void Sim::StartRollout() {
  StartRolloutRequest req;
  req.rollout_id = absl::StrCat("sim-", opt_.seed);
  req.release_id = kNew;
  req.baseline_release_id = kOld;
  req.plan = plan_;
  req.actor = "sim";
  req.reason = "simulation";
  absl::StatusOr<Rollout> r = controller_->StartRollout(req);
  if (!r.ok()) return;  // reported by Step
  rollout_id_ = r->id();
  index_ = AudienceIndex::Build(plan_, r->salt());
  const TenantTracks tracks(copts_.fleet);
  run_.stage_fingerprints.assign(plan_.stages_size() + 1, 0);
  HostInfo h;
  for (uint32_t i = 0; i < hosts_.n; ++i) {
    hosts_.FillInfo(i, Id(i), &h);
    placed_[i] = static_cast<int16_t>(
        index_->Place(h, tracks.TrackOf(hosts_.tenants[hosts_.tenant[i]])));
    if (placed_[i] >= 0) run_.stage_fingerprints[placed_[i]] ^= Mix(i);
  }
  next_measurement_ = clock_.Now() + opt_.threshold.interval;
  OnStageStarted(0);
}

void Sim::OnStageStarted(int stage) {
  if (stage_start_[stage] >= 0) return;
  stage_start_[stage] = cur_;
  const std::string name = StageName(plan_, stage);
  auto matches = [&](const std::string& s) {
    return s == name || (s.empty() && stage == 0);
  };
  for (int o = 0; o < sc_.outages_size(); ++o) {
    const SimOutage& out = sc_.outages(o);
    if (!matches(out.stage())) continue;
    outage_start_[o] = cur_ + FromProto(out.start()) / step_;
    outage_end_[o] = outage_start_[o] + FromProto(out.duration()) / step_;
  }
  for (int r = 0; r < sc_.restarts_size(); ++r) {
    if (!matches(sc_.restarts(r).stage())) continue;
    restart_at_[r] =
        cur_ + std::max<int64_t>(1, FromProto(sc_.restarts(r).at()) / step_);
    restart_until_[r] =
        restart_at_[r] + FromProto(sc_.restarts(r).downtime()) / step_;
  }
  const SimEffect& e = sc_.effect();
  if (trigger_step_ == kNever && matches(e.trigger_stage())) {
    trigger_step_ = cur_ + FromProto(e.trigger_at()) / step_;
  }
}

void Sim::UpdateWindows() {
  tel_block_ = assign_block_ = drop_ = 0;
  for (int o = 0; o < sc_.outages_size(); ++o) {
    if (cur_ < outage_start_[o] || cur_ >= outage_end_[o]) continue;
    const SimOutage& out = sc_.outages(o);
    const uint8_t bit = static_cast<uint8_t>(1u << o);
    if (out.blocks() != SimOutage::ASSIGNMENTS) tel_block_ |= bit;
    if (out.blocks() != SimOutage::TELEMETRY) assign_block_ |= bit;
    if (out.drop_telemetry()) drop_ |= bit;
  }
}

absl::Status Sim::Step() {
  if (cur_ == warmup_steps_) {
    StartRollout();
    if (rollout_id_.empty()) {
      return absl::InternalError("simulator: could not start the rollout");
    }
  }
  // Restarts: the controller dies, and comes back from the same store.
  for (size_t r = 0; r < restart_at_.size(); ++r) {
    if (cur_ == restart_at_[r] && Up()) {
      controller_.reset();
      down_until_ = std::max(down_until_, restart_until_[r]);
      ++run_.restarts;
    }
  }
  if (!Up() && cur_ >= down_until_) {
    ASSIGN_OR_RETURN(controller_,
                     Controller::Create(store_.get(), &clock_, copts_));
    admitted_.assign(hosts_.n, false);
  }
  UpdateWindows();
  Churn();
  // Hung hosts whose watchdog fired, boot-looping hosts booting, hosts
  // booting after a crash: they ask for their assignment now.
  if (auto it = wake_.find(cur_); it != wake_.end()) {
    for (uint32_t h : it->second) {
      flags_[h] &= ~kHung;
      Emit(h, EventType::kBoot, 0);
      checkins_.push_back(h);
    }
    wake_.erase(it);
  }
  if (auto it = boots_.find(cur_); it != boots_.end()) {
    std::vector<uint32_t> booting = std::move(it->second);
    boots_.erase(it);
    for (uint32_t h : booting) Boot(h);
  }
  // (Crashes of this step add to checkins_next_, for the next step.)
  checkins_.insert(checkins_.end(), checkins_next_.begin(),
                   checkins_next_.end());
  checkins_next_.clear();
  for (uint32_t h : checkins_) {
    const uint8_t f = flags_[h];
    if ((f & kOnline) && !(f & (kDead | kHung))) Poll(h, false);
  }
  checkins_.clear();
  // Polls and heartbeats of this slot.
  for (uint32_t h : by_phase_[cur_ % phases_]) {
    const uint8_t f = flags_[h];
    if (!(f & kOnline) || (f & (kDead | kHung))) continue;
    Poll(h, true);
  }
  Hazards();
  if (cur_ % 30 == 0) {  // sampled every 30 steps: O(n)
    uint64_t online = 0;
    for (uint32_t h = 0; h < hosts_.n; ++h) {
      online += (flags_[h] & kOnline) && !(flags_[h] & kDead);
    }
    run_.online_host_hours += static_cast<double>(online) * step_h_ * 30;
  }
  if (oracle_ && !oracle_done_ && !rollout_id_.empty()) OracleMass();
  RETURN_IF_ERROR(Deliver());
  if (rollout_id_.empty() || !Up()) return absl::OkStatus();
  return Decide();
}

void Sim::Churn() {
  if (auto it = comeback_.find(cur_); it != comeback_.end()) {
    for (uint32_t h : it->second) flags_[h] |= kOnline;
    comeback_.erase(it);
  }
  if (sc_.behavior().offline_fraction() <= 0) return;
  const size_t zones = leave_cum_.size();
  double pmax = 0;
  for (size_t z = 0; z < zones; ++z) pmax = std::max(pmax, LeaveProb(z, cur_));
  if (pmax <= 0) return;
  std::poisson_distribution<uint64_t> leaving(pmax * hosts_.n);
  std::exponential_distribution<double> off_len(1.0 / mean_offline_steps_);
  for (uint64_t k = leaving(rng_); k > 0; --k) {
    const uint32_t h = static_cast<uint32_t>(rng_() % hosts_.n);
    const double accept = LeaveProb(hosts_.tz[h], cur_) / pmax;
    if (accept < 1 && uniform_(rng_) >= accept) continue;
    if (!(flags_[h] & kOnline) || (flags_[h] & kDead)) continue;
    if (oracle_ && eta_ > 0 && !oracle_target_ && OracleAtRisk(h) &&
        EffectActive(h, cur_)) {
      // A silence onset under the null hypothesis too.
      const double l = std::max(1e-9, LeaveProb(hosts_.tz[h], cur_) / step_h_);
      OracleAdd(
          cur_ + phases_ + MaxDelay(h, static_cast<int>(EventType::kHeartbeat)),
          std::log((l + eta_) / l));
    }
    flags_[h] &= ~kOnline;
    comeback_[cur_ + 1 + static_cast<int64_t>(off_len(rng_))].push_back(h);
  }
}

void Sim::Poll(uint32_t h, bool heartbeat) {
  if (FlapperDown(h, cur_)) return;  // reaches nothing
  const uint8_t f = flags_[h];
  if (!rollout_id_.empty() && Up() && !AssignBlocked(h)) {
    const bool may_change =
        (f & (kRunsNew | kApplyFailed)) ||
        (placed_[h] >= 0 && placed_[h] <= current_stage_ && !terminal_);
    if (may_change || !admitted_[h]) {
      admitted_[h] = true;
      hosts_.FillInfo(h, Id(h), &info_);
      info_.telemetry_pending = backlog_[h];
      const Assignment a = controller_->Assign(info_, kContentType);
      const bool want_new = a.release != nullptr && a.release->id() == kNew;
      if (want_new && !(f & kRunsNew)) {
        Grant(h);
      } else if (!want_new && a.release != nullptr &&
                 (f & (kRunsNew | kApplyFailed))) {
        Revert(h);
      }
    }
  }
  const uint8_t now = flags_[h];
  if (heartbeat && !(now & (kDead | kBroken | kHung))) {
    Emit(h, EventType::kHeartbeat, (now & kRunsNew) ? kEvNew : 0);
  }
}

void Sim::Grant(uint32_t h) {
  if (!(flags_[h] & kEverExposed)) {
    flags_[h] |= kEverExposed;
    exposed_.push_back(h);
    if (first_exposure_step_ < 0) first_exposure_step_ = cur_;
    if (run_.first_exposed.size() < 16) run_.first_exposed.push_back(h);
    if (oracle_ && oracle_trials_ && !oracle_done_ && Affected(h) &&
        !(hosts_.traits[h] &
          (internal::kTraitChronic | internal::kTraitFlapper)) &&
        !TelemetryBlocked(h) && down_until_ <= cur_) {
      int64_t close = 0;
      for (int ty = 1; ty < kEventTypes; ++ty) {
        close = std::max(close, MaxDelay(h, ty));
      }
      trials_[h] = {static_cast<uint32_t>(cur_), 0};
      trial_close_[cur_ + close + 1].push_back(h);
    }
  }
  const SimEffect& e = sc_.effect();
  const bool affected = Affected(h);
  if (affected && e.boot_loop() > 0 && uniform_(rng_) < e.boot_loop()) {
    // Dies loading it, before any telemetry.
    flags_[h] |= kDead | kRunsNew;
    load_step_[h] = static_cast<uint32_t>(cur_);
    Hurt(h);
    boots_[cur_ + boot_steps_].push_back(h);
    return;
  }
  Emit(h, EventType::kApplying, kEvNew);
  if (affected &&
      ((flags_[h] & kApplyFailed) ||
       (e.apply_failure() > 0 && uniform_(rng_) < e.apply_failure()))) {
    flags_[h] |= kApplyFailed;
    Hurt(h);
    return;  // keeps the previous release
  }
  flags_[h] |= kRunsNew;
  load_step_[h] = static_cast<uint32_t>(cur_);
  if (affected && e.breaks_telemetry() > 0 &&
      uniform_(rng_) < e.breaks_telemetry()) {
    flags_[h] |= kBroken;
    Hurt(h);
    return;
  }
  if (affected && e.crash_on_apply() > 0 &&
      uniform_(rng_) < e.crash_on_apply()) {
    Crash(h, true);
  }
  Emit(h, EventType::kApplied, kEvNew);
}

void Sim::Revert(uint32_t h) {
  flags_[h] &= ~(kRunsNew | kBroken | kApplyFailed);
  Emit(h, EventType::kApplying, 0);
  Emit(h, EventType::kApplied, 0);
}

void Sim::Boot(uint32_t h) {
  // A boot-looping host boots and asks for its assignment.
  if (!(flags_[h] & kDead)) return;
  bool recover = false;
  if (!rollout_id_.empty() && Up() && !AssignBlocked(h) &&
      !FlapperDown(h, cur_)) {
    hosts_.FillInfo(h, Id(h), &info_);
    info_.telemetry_pending = backlog_[h];
    const Assignment a = controller_->Assign(info_, kContentType);
    recover = a.release != nullptr && a.release->id() != kNew;
  }
  if (!recover) {
    boots_[cur_ + boot_steps_].push_back(h);
    return;
  }
  flags_[h] &= ~(kDead | kRunsNew);
  flags_[h] |= kOnline;
  Emit(h, EventType::kBoot, 0);
  Emit(h, EventType::kApplying, 0);
  Emit(h, EventType::kApplied, 0);
}

void Sim::Hurt(uint32_t h) {
  if (flags_[h] & kHurt) return;
  flags_[h] |= kHurt;
  ++hurt_;
}

void Sim::Crash(uint32_t h, bool by_effect) {
  ++run_.crash_events;
  const uint8_t bits = (flags_[h] & kRunsNew) ? kEvNew : 0;
  const bool counted = oracle_ && oracle_crash_rr_ > 0 && OracleAtRisk(h) &&
                       (oracle_target_ || EffectActive(h, cur_));
  Emit(h, EventType::kCrash, bits | (counted ? kEvOracle : 0));
  Emit(h, EventType::kBoot, 0);
  if (by_effect) Hurt(h);
  checkins_next_.push_back(h);
}

void Sim::Hazards() {
  const uint32_t n = hosts_.n;
  auto up = [&](uint32_t h) {
    return (flags_[h] & kOnline) && !(flags_[h] & (kDead | kHung));
  };
  auto runs_effect = [&](uint32_t h) {
    return (flags_[h] & kRunsNew) && Affected(h) && EffectActive(h, cur_);
  };
  if (base_ > 0) {
    double cmax = 0;
    for (size_t z = 0; z < crash_cum_.size(); ++z) {
      cmax = std::max(cmax, crash_cum_[z][cur_ + 1] - crash_cum_[z][cur_]);
    }
    const double bound = hosts_.max_crash_weight * cmax;
    if (bound > 0) {
      std::poisson_distribution<uint64_t> cand(base_ * bound * step_h_ * n);
      for (uint64_t k = cand(rng_); k > 0; --k) {
        const uint32_t h = static_cast<uint32_t>(rng_() % n);
        double accept = hosts_.CrashWeight(h) * CrashCycle(h, cur_) / bound;
        if (rr_ < 1 && runs_effect(h)) accept *= rr_;
        if (accept < 1 && uniform_(rng_) >= accept) continue;
        if (!up(h) || (hosts_.traits[h] & internal::kTraitChronic)) continue;
        Crash(h, false);
      }
      if (rr_ > 1 && !exposed_.empty()) {
        std::poisson_distribution<uint64_t> excess(base_ * (rr_ - 1) * bound *
                                                   step_h_ * exposed_.size());
        for (uint64_t k = excess(rng_); k > 0; --k) {
          const uint32_t h = exposed_[rng_() % exposed_.size()];
          const double accept =
              hosts_.CrashWeight(h) * CrashCycle(h, cur_) / bound;
          if (accept < 1 && uniform_(rng_) >= accept) continue;
          if (!up(h) || !runs_effect(h) ||
              (hosts_.traits[h] & internal::kTraitChronic)) {
            continue;
          }
          Crash(h, true);
        }
      }
    }
  }
  if (!chronic_.empty()) {
    std::poisson_distribution<uint64_t> cand(chronic_rate_ * step_h_ *
                                             chronic_.size());
    for (uint64_t k = cand(rng_); k > 0; --k) {
      const uint32_t h = chronic_[rng_() % chronic_.size()];
      if (up(h)) Crash(h, false);
    }
  }
  if (eta_ > 0 && !exposed_.empty()) {
    std::poisson_distribution<uint64_t> cand(eta_ * step_h_ * exposed_.size());
    for (uint64_t k = cand(rng_); k > 0; --k) {
      const uint32_t h = exposed_[rng_() % exposed_.size()];
      if (!up(h) || !runs_effect(h)) continue;
      if (oracle_ && !oracle_target_ && OracleAtRisk(h)) {
        const double l =
            std::max(1e-9, LeaveProb(hosts_.tz[h], cur_) / step_h_);
        OracleAdd(cur_ + phases_ +
                      MaxDelay(h, static_cast<int>(EventType::kHeartbeat)),
                  std::log((l + eta_) / l));
      }
      flags_[h] |= kHung;
      Hurt(h);
      wake_[cur_ + hang_steps_].push_back(h);
    }
  }
  for (size_t s = 0; s < signal_names_.size(); ++s) {
    const double b = signal_base_[s], m = signal_mult_[s];
    if (b <= 0) continue;
    auto emit = [&](uint32_t h) {
      const bool counted = oracle_ && oracle_signal_mult_[s] > 0 &&
                           OracleAtRisk(h) && EffectActive(h, cur_);
      Emit(h, EventType::kSignal,
           ((flags_[h] & kRunsNew) ? kEvNew : 0) | (counted ? kEvOracle : 0),
           static_cast<uint16_t>(s));
    };
    std::poisson_distribution<uint64_t> cand(b * step_h_ * n);
    for (uint64_t k = cand(rng_); k > 0; --k) {
      const uint32_t h = static_cast<uint32_t>(rng_() % n);
      if (!up(h)) continue;
      if (m < 1 && runs_effect(h) && uniform_(rng_) >= m) continue;
      emit(h);
    }
    if (m > 1 && !exposed_.empty()) {
      std::poisson_distribution<uint64_t> excess(b * (m - 1) * step_h_ *
                                                 exposed_.size());
      for (uint64_t k = excess(rng_); k > 0; --k) {
        const uint32_t h = exposed_[rng_() % exposed_.size()];
        if (!up(h) || !runs_effect(h)) continue;
        emit(h);
        Hurt(h);
      }
    }
  }
}

void Sim::Emit(uint32_t h, EventType type, uint8_t bits, uint16_t signal) {
  if (report_only_exposed_ && !(flags_[h] & kRunsNew) && !(bits & kEvNew)) {
    return;
  }
  if (FlapperDown(h, cur_)) return;
  if (loss_ > 0 && uniform_(rng_) < loss_) return;
  const int ty = static_cast<int>(type);
  int64_t delay =
      fixed_lag_steps_ +
      host_lag_steps_[hosts_.lag_class.empty() ? 0 : hosts_.lag_class[h]] +
      type_lag_steps_[ty];
  if (jitter_mean_steps_ > 0) {
    std::exponential_distribution<double> jitter(1.0 / jitter_mean_steps_);
    delay += std::llround(std::min(jitter(rng_), 10 * jitter_mean_steps_));
  }
  int64_t due = cur_ + delay;
  if (batch_steps_ > 1) {
    const int64_t phase = static_cast<int64_t>(Mix(h + salt_) % batch_steps_);
    due += ((phase - due) % batch_steps_ + batch_steps_) % batch_steps_;
  }
  const uint8_t blocked = OutageMask(h) & tel_block_;
  if (blocked) {
    if (blocked & drop_) {
      ++run_.outage_dropped_events;
      return;
    }
    for (int o = 0; o < sc_.outages_size(); ++o) {
      if (blocked & (1u << o)) due = std::max(due, outage_end_[o]);
    }
  }
  if (down_until_ > cur_) due = std::max(due, down_until_);
  const PendingEvent p{h, static_cast<uint32_t>(cur_), type,
                       static_cast<uint8_t>(bits | kEvClean), signal};
  PendingEvent q = p;
  if (type == EventType::kBoot) q.bits &= ~kEvClean;  // boots: unclean
  if (due <= cur_) {
    due_now_.push_back(q);
  } else {
    queue_[due].push_back(q);
    ++backlog_[h];
  }
}

absl::Status Sim::Deliver() {
  if (auto it = queue_.find(cur_); it != queue_.end()) {
    for (const PendingEvent& p : it->second) --backlog_[p.host];
    due_now_.insert(due_now_.end(), it->second.begin(), it->second.end());
    queue_.erase(it);
  }
  if (due_now_.empty()) return absl::OkStatus();
  if (!Up()) {  // ringfence is down: hosts keep it buffered
    auto& later = queue_[down_until_];
    for (const PendingEvent& p : due_now_) ++backlog_[p.host];
    later.insert(later.end(), due_now_.begin(), due_now_.end());
    due_now_.clear();
    return absl::OkStatus();
  }
  const absl::Time now = clock_.Now();
  const absl::string_view new_id = kNew, old_id = kOld;
  for (size_t begin = 0; begin < due_now_.size(); begin += kMaxBatch) {
    const size_t end = std::min(due_now_.size(), begin + kMaxBatch);
    batch_.clear();
    for (size_t i = begin; i < end; ++i) {
      const PendingEvent& p = due_now_[i];
      TelemetryEventView e;
      e.host_id = Id(p.host);
      e.type = p.type;
      e.time = now - (cur_ - static_cast<int64_t>(p.occ)) * step_;
      if (!skew_ms_.empty()) e.time += absl::Milliseconds(skew_ms_[p.host]);
      if (p.type != EventType::kCrash && p.type != EventType::kBoot &&
          p.type != EventType::kSignal) {
        e.release_id = (p.bits & kEvNew) ? new_id : old_id;
      }
      if (p.type == EventType::kSignal) e.signal = signal_names_[p.signal];
      e.clean = (p.bits & kEvClean) != 0;
      batch_.push_back(e);
    }
    RETURN_IF_ERROR(controller_->Ingest(batch_));
  }
  if (oracle_ && !oracle_done_) {
    for (const PendingEvent& p : due_now_) {
      if (p.bits & kEvOracle) {
        const int ty = static_cast<int>(p.type);
        const double llr = p.type == EventType::kCrash
                               ? std::log(oracle_crash_rr_)
                               : std::log(oracle_signal_mult_[p.signal]);
        OracleAdd(p.occ + MaxDelay(p.host, ty), llr);
      }
      if (!trials_.empty()) {
        auto it = trials_.find(p.host);
        if (it != trials_.end() && it->second.first == p.occ) {
          it->second.second |= kSeenAny;
          if (p.type == EventType::kApplied ||
              (p.type == EventType::kHeartbeat && (p.bits & kEvNew))) {
            it->second.second |= kSeenApplied;
          }
          if (p.type == EventType::kCrash) it->second.second |= kSeenCrash;
        }
      }
    }
  }
  due_now_.clear();
  return absl::OkStatus();
}

bool Sim::OracleAtRisk(uint32_t h) const {
  const uint8_t f = flags_[h];
  if (!(f & kRunsNew) || !(f & kOnline) || (f & (kDead | kHung | kBroken))) {
    return false;
  }
  if (hosts_.traits[h] & (internal::kTraitChronic | internal::kTraitFlapper)) {
    return false;
  }
  if (!oracle_target_ && !Affected(h)) return false;
  return !TelemetryBlocked(h) && down_until_ <= cur_;
}

void Sim::OracleMass() {
  // The expected baseline events of this step on the hosts at risk, each
  // counted when that host's data for this step is complete.
  if (oracle_crash_rr_ <= 0 && eta_ <= 0 &&
      std::all_of(oracle_signal_mult_.begin(), oracle_signal_mult_.end(),
                  [](double m) { return m <= 0; })) {
    return;
  }
  const double keep = 1 - loss_;
  for (uint32_t h : exposed_) {
    if (!OracleAtRisk(h)) continue;
    if (!oracle_target_ && !EffectActive(h, cur_)) continue;
    if (oracle_crash_rr_ > 0) {
      const double mass =
          base_ * hosts_.CrashWeight(h) * CrashCycle(h, cur_) * step_h_ * keep;
      OracleAdd(cur_ + MaxDelay(h, static_cast<int>(EventType::kCrash)),
                -(oracle_crash_rr_ - 1) * mass);
    }
    for (size_t s = 0; s < oracle_signal_mult_.size(); ++s) {
      if (oracle_signal_mult_[s] <= 0) continue;
      OracleAdd(
          cur_ + MaxDelay(h, static_cast<int>(EventType::kSignal)),
          -(oracle_signal_mult_[s] - 1) * signal_base_[s] * step_h_ * keep);
    }
    if (eta_ > 0 && !oracle_target_) {
      OracleAdd(
          cur_ + phases_ + MaxDelay(h, static_cast<int>(EventType::kHeartbeat)),
          -eta_ * step_h_);
    }
  }
}

absl::Status Sim::Decide() {
  absl::Status tick = controller_->Tick();
  if (!tick.ok() && !absl::IsFailedPrecondition(tick)) return tick;
  ASSIGN_OR_RETURN(RolloutStatus st, controller_->GetRollout(rollout_id_));
  std::string why, rule;
  if (!IsTerminal(st.rollout.state())) {
    if (oracle_ && !oracle_done_) {
      for (auto it = oracle_pending_.begin();
           it != oracle_pending_.end() && it->first <= cur_;) {
        oracle_llr_ += it->second;
        it = oracle_pending_.erase(it);
      }
      for (auto it = trial_close_.begin();
           it != trial_close_.end() && it->first <= cur_;) {
        for (uint32_t h : it->second) {
          auto t = trials_.find(h);
          if (t == trials_.end()) continue;
          const uint8_t seen = t->second.second;
          const int64_t g = t->second.first;
          trials_.erase(t);
          auto add = [&](double p, double p0, bool symptom) {
            p0 = std::clamp(p0, 1e-12, 1 - 1e-12);
            const double p1 = std::clamp(p + (1 - p) * p0, p0, 1 - 1e-12);
            oracle_llr_ +=
                symptom ? std::log(p1 / p0) : std::log((1 - p1) / (1 - p0));
          };
          const double q = loss_;
          if (p_apply_crash_ > 0) {
            const double p0 = 1 - std::exp(-base_ * hosts_.CrashWeight(h) *
                                           CrashCycle(h, g) * step_h_);
            add((1 - q) * p_apply_crash_, (1 - q) * p0,
                (seen & kSeenCrash) != 0);
          }
          if (p_boot_ > 0) add(p_boot_, q * q, !(seen & kSeenAny));
          if (p_fail_ > 0) add(p_fail_, q, !(seen & kSeenApplied));
          if (p_break_ > 0) add(p_break_, q, !(seen & kSeenApplied));
        }
        it = trial_close_.erase(it);
      }
      if (oracle_llr_ >= oracle_upper_) {
        why = absl::StrFormat("oracle SPRT: log-likelihood ratio %.2f >= %.2f",
                              oracle_llr_, oracle_upper_);
        rule = "oracle";
      } else if (oracle_llr_ <= oracle_lower_) {
        oracle_done_ = true;  // accepted "no effect"
        oracle_pending_.clear();
        trial_close_.clear();
        trials_.clear();
      }
    } else if (opt_.decider == Decider::kThresholdRule &&
               clock_.Now() >= next_measurement_) {
      next_measurement_ = clock_.Now() + opt_.threshold.interval;
      uint64_t bad = 0;
      for (const SignalCounts& c : st.telemetry.signal_counts) {
        if (c.signal == kSignalCrash || c.signal == kSignalSilent) {
          bad += c.treatment_affected;
        }
      }
      const uint64_t exposed = st.telemetry.treatment_hosts;
      if (exposed >= opt_.threshold.min_exposed &&
          static_cast<double>(bad) / static_cast<double>(exposed) >
              opt_.threshold.max_fraction) {
        ++threshold_failures_;
      }
      if (threshold_failures_ > opt_.threshold.failure_limit) {
        why = absl::StrFormat("threshold rule: %d failed measurements",
                              threshold_failures_);
        rule = "threshold_rule";
      }
    }
    if (!why.empty()) {
      RETURN_IF_ERROR(controller_->Abort(rollout_id_, "sim", why).status());
      oracle_done_ = true;
      ASSIGN_OR_RETURN(st, controller_->GetRollout(rollout_id_));
    }
  }
  const Rollout& now = st.rollout;
  const int stage = static_cast<int>(now.stage());
  if (stage != current_stage_ &&
      stage < static_cast<int>(stage_start_.size())) {
    OnStageStarted(stage);
  }
  current_stage_ = stage;
  run_.tracked_hosts = st.telemetry.tracked_hosts;
  // A completed rollout stays under its halt rules for the plan's
  // post-completion watch (controller.h): hosts keep polling and loading
  // it, the gate keeps watching, and a halt then rolls it back. The run
  // goes on until the watch ends (the oracle and the threshold rule stop
  // deciding at completion).
  const bool watching =
      now.state() == config::v1::COMPLETED && now.has_watch_until() &&
      FromProto(now.watch_until()) > clock_.Now() &&
      FromProto(now.watch_until()) > FromProto(now.updated_at());
  if (now.state() == config::v1::COMPLETED && completed_step_ < 0) {
    completed_step_ = cur_;
  }
  terminal_ = IsTerminal(now.state()) && !watching;
  const int64_t rel = cur_ - warmup_steps_;
  if (opt_.timeline &&
      rel % std::max<int64_t>(1, absl::Minutes(1) / step_) == 0) {
    TimelinePoint p;
    p.t_s = absl::ToDoubleSeconds(rel * step_);
    p.exposed = st.telemetry.treatment_hosts;
    p.hurt = hurt_;
    p.state = std::string(RolloutStateName(now.state()));
    p.stage = StageName(plan_, stage);
    p.decision = now.last_decision().summary();
    run_.timeline.push_back(std::move(p));
  }
  if (!terminal_) return absl::OkStatus();
  run_.end_s = absl::ToDoubleSeconds(rel * step_);
  run_.stage = StageName(plan_, stage);
  if (now.state() == config::v1::COMPLETED) {
    run_.outcome = SimOutcome::kCompleted;
    run_.completed = true;
    // Completion time, not the end of its watch.
    run_.end_s =
        absl::ToDoubleSeconds((completed_step_ - warmup_steps_) * step_);
    return absl::OkStatus();
  }
  run_.outcome = SimOutcome::kHalted;
  run_.halted = true;
  run_.halt_reason = now.reason();
  if (!rule.empty()) {
    run_.halt_rule = rule;
  } else if (now.state() == config::v1::HALTED &&
             now.last_decision().verdict() == config::v1::HALT &&
             now.last_decision().evidence_size() > 0) {
    const Evidence& ev = now.last_decision().evidence(0);
    run_.halt_rule = ev.signal().empty()
                         ? ev.rule()
                         : absl::StrCat(ev.rule(), "/", ev.signal());
  } else if (absl::StartsWith(now.reason(), "emergency stop")) {
    run_.halt_rule = "emergency_stop";
  } else {
    run_.halt_rule = std::string(RolloutStateName(now.state()));
  }
  run_.exposed_at_halt = exposed_.size();
  run_.hurt_at_halt = hurt_;
  if (first_exposure_step_ >= 0) {
    run_.time_to_halt_s =
        absl::ToDoubleSeconds((cur_ - first_exposure_step_) * step_);
  }
  return absl::OkStatus();
}

// ---- The horizon ----------------------------------------------------------
//
// After the end the controller's answers are fixed, so each host that can
// still be hurt (or still load the release) is followed on its own in
// continuous steps: its offline spells (the same leave hazard and spell
// lengths as the steps), its next successful poll (its heartbeat slot,
// online, not in an outage that blocks polls, not flapping, ringfence up),
// and the effect's hazard while it runs the release and is online.

void Sim::Horizon() {
  run_.exposed_total = exposed_.size();
  const int64_t end = cur_;
  const int64_t stop =
      std::min<int64_t>(end + horizon_steps_, table_steps_ - 1);
  if (stop <= end) return;
  const SimOutcome outcome = run_.outcome;
  const SimEffect& e = sc_.effect();
  // Where polls fail: outages that block them (per host mask) and restarts.
  struct Window {
    int64_t from, to;
    uint8_t mask;  // 0 = every host
  };
  std::vector<Window> blocks;
  for (int o = 0; o < sc_.outages_size(); ++o) {
    if (outage_end_[o] <= end || outage_start_[o] >= kNever) continue;
    if (sc_.outages(o).blocks() == SimOutage::TELEMETRY) continue;
    blocks.push_back(
        {outage_start_[o], outage_end_[o], static_cast<uint8_t>(1u << o)});
  }
  for (size_t r = 0; r < restart_at_.size(); ++r) {
    if (restart_until_[r] > end && restart_at_[r] < kNever) {
      blocks.push_back({restart_at_[r], restart_until_[r], 0});
    }
  }
  if (down_until_ > end) blocks.push_back({end, down_until_, 0});
  absl::flat_hash_map<uint32_t, int64_t> comeback;
  for (const auto& [s, hs] : comeback_) {
    for (uint32_t h : hs) comeback[h] = s;
  }
  const double rr_excess = std::max(0.0, rr_ - 1);
  double flat = eta_;  // hazard per host-hour without cycle
  for (size_t s = 0; s < signal_names_.size(); ++s) {
    flat += signal_base_[s] * std::max(0.0, signal_mult_[s] - 1);
  }
  const bool running_effect = (rr_excess > 0 && base_ > 0) || flat > 0;
  std::exponential_distribution<double> unit(1.0);
  std::exponential_distribution<double> off_len(1.0 / mean_offline_steps_);

  for (uint32_t h = 0; h < hosts_.n; ++h) {
    const uint8_t f = flags_[h];
    const bool runs = (f & kRunsNew) && !(f & kDead);
    const bool can_hurt = Affected(h) && !(f & kHurt);
    // Completed: hosts that do not run it load it at their next poll.
    const bool will_load = outcome == SimOutcome::kCompleted && !runs &&
                           !(f & (kDead | kApplyFailed)) &&
                           !(hosts_.traits[h] & internal::kTraitPinned);
    if (!will_load && !(runs && can_hurt && running_effect)) continue;
    const int z = hosts_.tz[h];
    // The host's online/offline timeline from `end`.
    bool online = (f & kOnline) != 0;
    int64_t t = end;
    int64_t change = kNever;
    auto next_leave = [&](int64_t from) -> int64_t {
      const auto& cum = leave_cum_[z];
      const double target = cum[from] + unit(rng_);
      if (target >= cum[stop]) return kNever;
      return std::upper_bound(cum.begin() + from, cum.begin() + stop + 1,
                              target) -
             cum.begin();
    };
    if (online) {
      change = next_leave(t);
    } else {
      auto it = comeback.find(h);
      change = it != comeback.end() ? it->second : t;
    }
    // Advances the timeline to `s`.
    auto advance = [&](int64_t s) {
      while (change <= s) {
        if (online) {
          online = false;
          change = change + 1 + static_cast<int64_t>(off_len(rng_));
        } else {
          online = true;
          change = next_leave(change);
        }
      }
    };
    auto blocked = [&](int64_t s) -> int64_t {  // end of a block, or -1
      for (const Window& w : blocks) {
        if (s >= w.from && s < w.to &&
            (w.mask == 0 || (OutageMask(h) & w.mask))) {
          return w.to;
        }
      }
      if (FlapperDown(h, s)) return s + 1;
      return -1;
    };
    // The first successful poll at or after `from`, or kNever.
    auto next_poll = [&](int64_t from) -> int64_t {
      int64_t s = from + ((slot_[h] - from) % phases_ + phases_) % phases_;
      while (s < stop) {
        advance(s);
        if (!online) {
          const int64_t back = change;
          s = back + ((slot_[h] - back) % phases_ + phases_) % phases_;
          continue;
        }
        const int64_t until = blocked(s);
        if (until < 0) return s;
        s = until + ((slot_[h] - until) % phases_ + phases_) % phases_;
      }
      return kNever;
    };
    int64_t start = end, run_end = stop;
    int64_t loaded = load_step_[h];
    if (will_load) {
      start = next_poll(end);
      if (start >= stop) continue;
      ++run_.exposed_total;
      if (!can_hurt) continue;
      loaded = start;
      if (e.boot_loop() > 0 && uniform_(rng_) < e.boot_loop()) {
        Hurt(h);
        continue;
      }
      if ((e.apply_failure() > 0 && uniform_(rng_) < e.apply_failure()) ||
          (e.breaks_telemetry() > 0 && uniform_(rng_) < e.breaks_telemetry()) ||
          (e.crash_on_apply() > 0 && uniform_(rng_) < e.crash_on_apply())) {
        Hurt(h);
        continue;
      }
      if (!running_effect) continue;
    } else if (outcome == SimOutcome::kHalted) {
      run_end = next_poll(end);  // reverts there
    }
    // Exposure to the running effect: online, from its activation.
    const int64_t active = std::max(loaded + delay_steps_, trigger_step_);
    const double a = base_ * hosts_.CrashWeight(h) * rr_excess * step_h_;
    const double b = flat * step_h_;
    const auto& cum = crash_cum_[z];
    double need = unit(rng_), have = 0;
    int64_t s = std::max(start, active);
    const int64_t limit = std::min(run_end, stop);
    while (s < limit && have < need) {
      advance(s);
      const int64_t next = std::min(limit, change);
      if (online) have += a * (cum[next] - cum[s]) + b * (next - s);
      s = std::max(next, s + 1);
    }
    if (have >= need) Hurt(h);
  }
}

}  // namespace

absl::StatusOr<SimRun> Simulate(const Scenario& scenario, const Plan& plan,
                                const SimOptions& options) {
  RETURN_IF_ERROR(ValidatePlan(plan));
  const Scenario s = internal::ApplyDeprecatedFields(scenario);
  RETURN_IF_ERROR(ValidateScenarioForPlan(s, plan));
  Sim sim(s, plan, options);
  return sim.Run();
}

}  // namespace ringfence
