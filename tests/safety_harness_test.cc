// The gate's safety invariants (controller.h), checked by a seeded,
// randomized simulation in the FoundationDB style: random plans and
// policies, fleets with chronic crashers and flapping hosts, releases that
// boot-loop (silently, or checking in at every boot) or crash-loop, event
// streams with delays, duplicates, reordering and loss, operator actions,
// and kill -9 restarts (the controller is dropped and recreated over the
// same store, losing everything not committed).
//
//   SafetyHarnessTest.Invariants          assignments, exposures, halts
//   SafetyHarnessTest.RestartEquivalence  the same events with and without
//                                         restarts give the same evidence
//
// Fast by default (seconds); RINGFENCE_HARNESS_SEEDS=N runs N seeds of each
// (the closing notes report a long run). A failing seed prints itself:
// RINGFENCE_HARNESS_SEED=S replays just that one.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/assign.h"
#include "ringfence/controller.h"
#include "ringfence/hash.h"
#include "ringfence/policy.h"
#include "ringfence/sqlite_store.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

constexpr char kType[] = "harness/content";
constexpr absl::Duration kStep = absl::Seconds(10);
constexpr absl::Duration kPoll = absl::Seconds(60);

int SeedsFromEnv(int def) {
  const char* v = std::getenv("RINGFENCE_HARNESS_SEEDS");
  return v != nullptr ? std::max(1, std::atoi(v)) : def;
}

// Seeds to run: RINGFENCE_HARNESS_SEED=S alone, or 1..n.
std::vector<uint64_t> Seeds(int def) {
  if (const char* one = std::getenv("RINGFENCE_HARNESS_SEED")) {
    return {static_cast<uint64_t>(std::strtoull(one, nullptr, 10))};
  }
  std::vector<uint64_t> out;
  for (int i = 1; i <= SeedsFromEnv(def); ++i) out.push_back(i);
  return out;
}

Release MakeRelease(const std::string& id, char digest) {
  Release r;
  r.set_id(id);
  r.set_content_type(kType);
  r.set_digest_sha256(std::string(64, digest));
  r.set_size_bytes(100);
  return r;
}

TelemetryEvent Event(const std::string& host, EventType type,
                     const std::string& release = "") {
  TelemetryEvent e;
  e.host_id = host;
  e.type = type;
  e.release_id = release;
  return e;
}

// A random plan with random policy layers; retried until it validates.
Plan RandomPlan(std::mt19937_64& rng, bool single_stage) {
  std::uniform_int_distribution<int> pick(0, 1000000);
  auto chance = [&](double p) { return pick(rng) < p * 1000000; };
  auto between = [&](int lo, int hi) {
    return lo + static_cast<int>(pick(rng) % (hi - lo + 1));
  };
  while (true) {
    Plan p;
    p.set_name("harness");
    const int stages = single_stage ? 1 : between(1, 4);
    double percent = 0;
    for (int i = 0; i < stages; ++i) {
      Stage* s = p.add_stages();
      s->set_name(absl::StrCat("s", i));
      if (i == stages - 1) {
        s->mutable_audience()->set_percent(100);
      } else if (i == 0 && chance(0.5)) {
        s->mutable_audience()->add_labels("ring:dogfood");
      } else {
        percent = std::min(90.0, percent + between(5, 40));
        s->mutable_audience()->set_percent(percent);
      }
      s->mutable_bake_time()->set_seconds(single_stage ? 365 * 86400 - 1
                                                       : between(60, 900));
      s->mutable_pacing()->set_initial_hosts(between(1, 10));
      s->mutable_pacing()->set_growth_per_healthy_host(between(0, 20) / 10.0);
      s->mutable_pacing()->mutable_healthy_after()->set_seconds(
          between(30, 180));
      if (chance(0.4)) {
        GatePolicy* sp = s->mutable_policy();
        for (const char* sig : {"crash", "silent", "apply_stuck"}) {
          if (chance(0.5)) continue;
          SignalRule* r = sp->add_signals();
          r->set_signal(sig);
          r->set_max_affected_hosts(between(1, 5));
        }
        if (chance(0.3)) sp->set_alpha(between(1, 10) / 200.0);
      }
    }
    GatePolicy* pp = p.mutable_policy();
    pp->mutable_silence_timeout()->set_seconds(between(90, 300));
    pp->mutable_apply_timeout()->set_seconds(between(90, 300));
    pp->mutable_max_staleness()->set_seconds(120);
    pp->set_min_exposed_hosts(between(1, 5));
    if (chance(0.3)) {
      SignalRule* r = pp->add_signals();
      r->set_signal("vendor_signal");
      r->set_max_affected_hosts(between(1, 5));
    }
    if (chance(0.2)) {
      SignalRule* r = pp->add_signals();
      r->set_signal("unclean_reboot");
      r->set_disabled(true);
      r->set_disabled_reason("harness");
    }
    p.mutable_post_completion_watch()->set_seconds(between(60, 1800));
    if (ValidatePlan(p).ok()) return p;
  }
}

enum class Effect { kNone, kBootLoop, kBootLoopCheckIn, kCrashLoop };
enum class Kind { kHealthy, kChronic, kFlapper };

struct Host {
  HostInfo info;
  Kind kind = Kind::kHealthy;
  int phase = 0;  // polls when step % 6 == phase
  std::string running;
  bool dead = false;  // boot-looping on the candidate
  bool crash_looping = false;
  absl::Time died = absl::InfiniteFuture();
};

// What the runs exercised, so a harness that checks nothing shows.
struct Stats {
  int runs = 0;
  int death_checks = 0;  // cohorts that reached a breaker, checked
  int halted = 0, aborted = 0, completed = 0, restarts = 0, answers = 0;
  int good = 0, false_halts = 0;  // harmless releases, and their halts
};
Stats stats_;

struct Config {
  uint64_t seed = 1;
  bool sqlite = false;
  bool restarts = true;
  bool operators = true;
};

// One randomized run of the full system, checking invariants 1-4 as it goes
// (controller.h lists them).
class HarnessRun {
 public:
  HarnessRun(const Config& cfg, const std::string& dir)
      : cfg_(cfg), dir_(dir) {}

  void Go() {
    rng_.seed(cfg_.seed);
    plan_ = RandomPlan(rng_, /*single_stage=*/false);
    const int n = Between(30, 200);
    const double chronic = Chance(0.5) ? Between(0, 5) / 100.0 : 0;
    const double flappers = Chance(0.3) ? Between(0, 5) / 100.0 : 0;
    effect_ = static_cast<Effect>(Between(0, 3));
    const double affected = Chance(0.5) ? 1.0 : Between(20, 100) / 100.0;
    max_delay_steps_ = Between(0, 2);
    loss_ = Chance(0.3) ? 0.02 : 0;
    clean_control_ = chronic == 0 && flappers == 0;
    for (int i = 0; i < n; ++i) {
      Host h;
      h.info.host_id = absl::StrFormat("host-%04d", i);
      if (i < 10) h.info.labels.push_back("ring:dogfood");
      h.info.agent_version = "7.11.0";
      h.info.platform = "windows";
      h.phase = Between(0, 5);
      const double u = Uniform();
      h.kind = u < chronic              ? Kind::kChronic
               : u < chronic + flappers ? Kind::kFlapper
                                        : Kind::kHealthy;
      affected_.push_back(h.kind == Kind::kHealthy && Uniform() < affected);
      h.running = "base";
      hosts_.push_back(std::move(h));
    }
    OpenStore();
    NewController();
    ASSERT_OK(c_->CreateRelease(MakeRelease("base", 'a'), "ci"));
    ASSERT_OK(c_->CreateRelease(MakeRelease("cand", 'b'), "ci"));
    StartRolloutRequest req;
    req.plan = plan_;
    req.actor = "ci";
    req.reason = "harness";
    const int baseline_kind = Between(0, 2);  // proven, vouched, none
    if (baseline_kind == 0) {
      req.rollout_id = "adopt";
      req.release_id = "base";
      req.allow_no_baseline = true;
      ASSERT_OK(c_->StartRollout(req));
      ASSERT_OK(c_->PromoteToCompletion("adopt", "ops", "adopt"));
      base_proven_ = true;
    }
    req.rollout_id = "r";
    req.release_id = "cand";
    req.baseline_release_id = baseline_kind == 2 ? "" : "base";
    req.allow_no_baseline = baseline_kind == 2;
    auto started = c_->StartRollout(req);
    ASSERT_OK(started);
    base_vouched_ = started->baseline_vouched();
    has_baseline_ = !started->baseline_release_id().empty();
    index_ = AudienceIndex::Build(plan_, started->salt());
    const int steps = Between(200, 700);
    if (std::getenv("RINGFENCE_HARNESS_VERBOSE") != nullptr) {
      std::fprintf(stderr, "plan %s\neffect %d affected %.2f hosts %d\n",
                   plan_.DebugString().c_str(), static_cast<int>(effect_),
                   affected, n);
    }
    for (step_ = 0; step_ < steps; ++step_) {
      Step();
      if (::testing::Test::HasFatalFailure()) return;
    }
    CheckDeaths();
    ++stats_.runs;
    const RolloutState end = State().state();
    stats_.halted += end == config::v1::HALTED;
    stats_.aborted += end == config::v1::ABORTED;
    stats_.completed += completed_at_ != absl::InfiniteFuture();
    if (effect_ == Effect::kNone && end == config::v1::HALTED && !estopped_) {
      ++stats_.false_halts;
      if (std::getenv("RINGFENCE_HARNESS_VERBOSE") != nullptr) {
        std::fprintf(stderr, "seed %llu false halt: %s\n",
                     static_cast<unsigned long long>(cfg_.seed),
                     State().reason().c_str());
      }
    }
    stats_.good += effect_ == Effect::kNone;
  }

 private:
  int Between(int lo, int hi) {
    return lo + static_cast<int>(rng_() % static_cast<uint64_t>(hi - lo + 1));
  }
  double Uniform() {
    return std::uniform_real_distribution<double>(0, 1)(rng_);
  }
  bool Chance(double p) { return Uniform() < p; }

  void OpenStore() {
    if (!cfg_.sqlite) {
      if (store_ == nullptr) store_ = NewMemoryStore();
      return;
    }
    store_.reset();
    SqliteStoreOptions o;
    o.data_dir = dir_;
    auto s = OpenSqliteStore(o);
    ASSERT_OK(s);
    store_ = std::move(*s);
  }

  void NewController() {
    ControllerOptions o;
    o.checkpoint_interval = absl::Seconds(Between(0, 5));
    auto c = Controller::Create(store_.get(), &clock_, o);
    ASSERT_OK(c);
    c_ = std::move(*c);
  }

  Rollout State() {
    auto st = c_->GetRollout("r");
    EXPECT_OK(st);
    return st.ok() ? st->rollout : Rollout();
  }

  std::set<std::string> Exposed() {
    auto e = store_->ListExposures("r");
    EXPECT_OK(e);
    std::set<std::string> out;
    if (e.ok()) {
      for (const Exposure& x : *e) out.insert(x.host_id);
    }
    return out;
  }

  std::string Where() const {
    return absl::StrCat("seed ", cfg_.seed, " step ", step_,
                        " (replay: RINGFENCE_HARNESS_SEED=", cfg_.seed, ")");
  }

  void Operator(double p) {
    if (!cfg_.operators || !Chance(p)) return;
    const int what = Between(0, 9);
    absl::StatusOr<Rollout> r;
    if (what < 3) {
      r = c_->Pause("r", "ops", "look");
    } else if (what < 5) {
      r = c_->Resume("r", "ops", "go on");
    } else if (what < 9) {
      r = c_->Promote("r", "ops", "hurry");
    } else if (Chance(0.3)) {
      r = c_->Abort("r", "ops", "stop");
    } else if (Chance(0.3)) {
      c_->EmergencyStop(kType, "ops", "estop").IgnoreError();
      estopped_ = true;
    }
    if ((what >= 3 && what < 9) && r.ok()) {
      // Invariant 1 (manual actions): a promote or resume that landed did
      // so with the halt rules passing on every event already ingested: the
      // gate, run at once on the same evidence, does not halt.
      auto d = c_->Evaluate("r");
      if (d.ok()) {
        EXPECT_NE(d->verdict(), config::v1::HALT)
            << Where() << ": a manual " << (what < 5 ? "resume" : "promote")
            << " landed although the halt rules trip: " << d->summary();
      }
    }
  }

  // Invariants 2-4 on one answer.
  void CheckAnswer(const Host& h, const Assignment& a, const Rollout& r) {
    const RolloutState s = r.state();
    const bool rolled_back =
        s == config::v1::HALTED || s == config::v1::ABORTED || estopped_;
    if (a.unload) {
      EXPECT_TRUE(rolled_back && !has_baseline_) << Where();
      EXPECT_EQ(a.release, nullptr) << Where();
    }
    if (a.release == nullptr) return;
    if (a.release->id() == "cand") {
      // Invariant 3: halted and aborted rollouts expose nobody.
      EXPECT_FALSE(rolled_back) << Where() << " " << h.info.host_id;
      // Invariant 2: the rollout's release only in a reached stage.
      if (s != config::v1::COMPLETED) {
        const int placed = index_->Place(h.info, config::v1::TRACK_GENERAL);
        EXPECT_GE(placed, 0) << Where();
        EXPECT_LE(placed, static_cast<int>(r.stage())) << Where();
      }
      // Invariant 4: a durable exposure before the answer.
      if (exposed_.count(h.info.host_id) == 0) exposed_ = Exposed();
      EXPECT_EQ(exposed_.count(h.info.host_id), 1u)
          << Where() << " " << h.info.host_id << " told cand, no exposure";
    } else {
      // Invariant 2: any other release must be a proven baseline, or the
      // vouched one once the rollout was rolled back.
      EXPECT_EQ(a.release->id(), "base") << Where();
      EXPECT_TRUE(base_proven_ || (base_vouched_ && rolled_back)) << Where();
    }
  }

  void Step() {
    clock_.Advance(kStep);
    if (cfg_.restarts && Chance(0.02)) {
      c_.reset();  // kill -9: only what was committed survives
      OpenStore();
      NewController();
      last_restart_ = clock_.Now();
      ++stats_.restarts;
    }
    const bool act_late = Chance(0.5);
    if (!act_late) Operator(0.02);
    const Rollout before = State();
    const bool was_rolled_back = before.state() == config::v1::HALTED ||
                                 before.state() == config::v1::ABORTED;
    const size_t exposures_before = was_rolled_back ? Exposed().size() : 0;
    std::vector<TelemetryEvent> now;
    for (size_t i = 0; i < hosts_.size(); ++i) {
      Host& h = hosts_[i];
      if (step_ % 6 != h.phase) continue;
      if (h.dead) {
        // A boot loop that checks in at every boot, or silence.
        if (effect_ == Effect::kBootLoopCheckIn) {
          c_->Assign(h.info, kType);
        }
        continue;
      }
      const Rollout r = State();
      const Assignment a = c_->Assign(h.info, kType);
      CheckAnswer(h, a, r);
      ++stats_.answers;
      std::string want = h.running;
      if (a.unload) want = "";
      if (a.release != nullptr) want = a.release->id();
      if (want != h.running) {
        if (!want.empty())
          now.push_back(Event(h.info.host_id, EventType::kApplying, want));
        if (want == "cand" && affected_[i] && effect_ != Effect::kNone) {
          if (effect_ == Effect::kCrashLoop) {
            h.crash_looping = true;
            if (h.died == absl::InfiniteFuture()) h.died = clock_.Now();
          } else {
            h.dead = true;
            h.died = clock_.Now();
            continue;
          }
        }
        if (want != "cand") h.crash_looping = false;
        h.running = want;
        if (!want.empty())
          now.push_back(Event(h.info.host_id, EventType::kApplied, want));
      }
      const bool flapping = h.kind == Kind::kFlapper && (step_ / 30) % 2 == 1;
      if (!flapping) {
        now.push_back(Event(h.info.host_id, EventType::kHeartbeat, h.running));
      }
      if (h.kind == Kind::kChronic || h.crash_looping) {
        now.push_back(Event(h.info.host_id, EventType::kCrash));
        TelemetryEvent boot = Event(h.info.host_id, EventType::kBoot);
        boot.clean = false;
        now.push_back(boot);
      }
      if (Chance(0.01)) {
        TelemetryEvent v = Event(h.info.host_id, EventType::kSignal);
        v.signal = "vendor_signal";
        now.push_back(v);
      }
    }
    // Delays, duplicates, loss; reordering within a batch.
    for (TelemetryEvent& e : now) {
      if (Chance(loss_)) continue;
      const int d = Between(0, max_delay_steps_);
      pending_[step_ + d].push_back(e);
      if (Chance(0.05)) pending_[step_ + Between(0, 2)].push_back(e);
    }
    if (auto it = pending_.find(step_); it != pending_.end()) {
      std::shuffle(it->second.begin(), it->second.end(), rng_);
      EXPECT_OK(c_->Ingest(it->second)) << Where();
      pending_.erase(it);
    }
    // Between the evidence arriving and the gate's next tick: the window in
    // which a manual action could race a tripped rule.
    if (act_late) Operator(0.1);
    absl::Status tick = c_->Tick();
    EXPECT_TRUE(tick.ok() || absl::IsFailedPrecondition(tick))
        << Where() << ": " << tick;
    const Rollout after = State();
    if (std::getenv("RINGFENCE_HARNESS_VERBOSE") != nullptr &&
        (after.version() != before.version() || step_ % 60 == 0)) {
      auto st = c_->GetRollout("r");
      if (st.ok()) {
        for (size_t k = 0; k < st->telemetry.cohorts.size(); ++k) {
          const auto& co = st->telemetry.cohorts[k];
          std::string aff;
          for (size_t j = 0; j < st->telemetry.signals.size(); ++j) {
            absl::StrAppend(&aff, " ", st->telemetry.signals[j], "=",
                            co.affected[j], "/", co.pre_affected[j], "/",
                            co.control_expected[j]);
          }
          std::fprintf(stderr, "  cohort %zu exposed %lu:%s\n", k,
                       static_cast<unsigned long>(co.exposed), aff.c_str());
        }
        std::fprintf(stderr, "  last_ingest %s fresh_since %s\n",
                     absl::FormatTime(st->telemetry.last_ingest).c_str(),
                     absl::FormatTime(st->telemetry.fresh_since).c_str());
      }
      std::fprintf(stderr, "step %d: %s stage %d v%d: %s | %s\n", step_,
                   std::string(RolloutStateName(after.state())).c_str(),
                   after.stage(), static_cast<int>(after.version()),
                   after.reason().c_str(),
                   after.last_decision().summary().c_str());
    }
    if (after.state() == config::v1::COMPLETED &&
        completed_at_ == absl::InfiniteFuture()) {
      completed_at_ = clock_.Now();
    }
    if ((after.state() == config::v1::HALTED ||
         after.state() == config::v1::ABORTED) &&
        stopped_at_ == absl::InfiniteFuture()) {
      stopped_at_ = clock_.Now();
    }
    if (was_rolled_back) {
      // Invariant 3: no exposure recorded after a halt or abort.
      EXPECT_EQ(Exposed().size(), exposures_before) << Where();
    }
  }

  // Invariant 1: a release that killed at least a breaker's worth of hosts
  // of one cohort is halted (or aborted) within a detection window of the
  // death that reached the breaker, and is never COMPLETED after that
  // window. Checked where the control arm cannot explain the deaths by
  // construction: no flappers for silent deaths, no chronic crashers for
  // crash loops (with them the control-aware breaker may, by design, wait
  // for a larger count; gate.h), and while some host still reports: a
  // release that silences every host at once is, to the gate, the same as
  // an outage of its own telemetry path, and it holds (gate.h, freshness).
  void CheckDeaths() {
    if (effect_ == Effect::kNone) return;
    int reporting = 0;
    for (const Host& h : hosts_)
      reporting += !h.dead && h.kind != Kind::kFlapper;
    if (reporting == 0) return;
    const bool silent_kind = effect_ != Effect::kCrashLoop;
    for (const Host& h : hosts_) {
      if (h.kind == Kind::kFlapper && silent_kind) return;
      if (h.kind == Kind::kChronic && !silent_kind) return;
    }
    auto exposures = store_->ListExposures("r");
    ASSERT_OK(exposures);
    std::map<std::string, uint32_t> cohort;
    for (const Exposure& e : *exposures) cohort[e.host_id] = e.stage;
    const auto policies = EffectivePolicies(plan_);
    std::map<uint32_t, std::vector<absl::Time>> deaths;
    for (const Host& h : hosts_) {
      if (h.died == absl::InfiniteFuture()) continue;
      auto it = cohort.find(h.info.host_id);
      if (it != cohort.end()) deaths[it->second].push_back(h.died);
    }
    absl::Duration window =
        kPoll + kStep * (max_delay_steps_ + 3) + absl::Seconds(30);
    for (const GatePolicy& p : policies) {
      window = std::max(window, FromProto(p.silence_timeout()) +
                                    FromProto(p.apply_timeout()) / 4 + kPoll +
                                    kStep * (max_delay_steps_ + 3) +
                                    absl::Seconds(30));
    }
    for (auto& [stage, times] : deaths) {
      const GatePolicy& p =
          policies[std::min<size_t>(stage, policies.size() - 1)];
      uint32_t breaker = 0;
      for (const SignalRule& r : p.signals()) {
        const bool relevant = silent_kind ? (r.signal() == "silent" ||
                                             r.signal() == "apply_stuck")
                                          : r.signal() == "crash";
        if (relevant && r.max_affected_hosts() > 0) {
          breaker = breaker == 0 ? r.max_affected_hosts()
                                 : std::min(breaker, r.max_affected_hosts());
        }
      }
      if (breaker == 0 || times.size() < breaker) continue;
      std::sort(times.begin(), times.end());
      absl::Time t = times[breaker - 1];
      // A restart restarts silence clocks: allow one more window.
      const absl::Duration w = last_restart_ > t - window ? 2 * window : window;
      const absl::Time deadline = t + w;
      if (deadline >= clock_.Now()) continue;  // not enough time to see it
      ++stats_.death_checks;
      EXPECT_LE(stopped_at_, deadline)
          << Where() << ": stage " << stage << " had " << times.size()
          << " dead hosts (breaker " << breaker << ") by "
          << absl::FormatTime(t) << "; state "
          << RolloutStateName(State().state()) << " reason "
          << State().reason();
      if (completed_at_ != absl::InfiniteFuture()) {
        EXPECT_LT(completed_at_, deadline)
            << Where() << ": COMPLETED after the deaths were visible";
      }
    }
  }

  Config cfg_;
  std::string dir_;
  std::mt19937_64 rng_;
  FakeClock clock_;
  StorePtr store_;
  std::unique_ptr<Controller> c_;
  Plan plan_;
  std::unique_ptr<const AudienceIndex> index_;
  std::vector<Host> hosts_;
  std::vector<bool> affected_;
  Effect effect_ = Effect::kNone;
  int max_delay_steps_ = 0;
  double loss_ = 0;
  bool clean_control_ = true;
  bool base_proven_ = false, base_vouched_ = false, has_baseline_ = false;
  bool estopped_ = false;
  int step_ = 0;
  std::map<int, std::vector<TelemetryEvent>> pending_;
  std::set<std::string> exposed_;
  absl::Time completed_at_ = absl::InfiniteFuture();
  absl::Time stopped_at_ = absl::InfiniteFuture();
  absl::Time last_restart_ = absl::InfinitePast();
};

// Invariant 5: restart-equivalence. Two controllers over two stores get the
// same event stream at the same instants; one of them is killed (dropped
// and recreated over its store) at random ticks. Every count the halt rules
// read, the sequential tests' e-values and the control hazard must be
// equal after each tick, and the two must halt at the same tick for the
// same rule. The documented windows are left out: silence and apply_stuck
// timers restart at a restart (so those two signals may trip up to one
// timeout later), and a host that has not reported since the restart is
// missing from the control arm until it does (here every live host reports
// every step, heartbeats first).
class EquivalenceRun {
 public:
  explicit EquivalenceRun(uint64_t seed) : seed_(seed), rng_(seed) {}

  void Go() {
    plan_ = RandomPlan(rng_, /*single_stage=*/true);
    const int n = Between(20, 150);
    const double chronic = Between(0, 5) / 100.0;
    const int effect = Between(0, 2);  // none, boot loop, crash loop
    const double affected = Between(10, 100) / 100.0;
    for (int i = 0; i < n; ++i) {
      H h;
      h.id = absl::StrFormat("host-%04d", i);
      h.chronic = Uniform() < chronic;
      h.apply_step = Uniform() < 0.7 ? Between(1, 120) : -1;
      h.boot_loops = effect == 1 && !h.chronic && Uniform() < affected;
      h.crash_loops = effect == 2 && !h.chronic && Uniform() < affected;
      hosts_.push_back(h);
    }
    for (Side* s : {&a_, &b_}) {
      s->store = NewMemoryStore();
      Open(s);
      ASSERT_OK(s->c->CreateRelease(MakeRelease("base", 'a'), "ci"));
      ASSERT_OK(s->c->CreateRelease(MakeRelease("cand", 'b'), "ci"));
      StartRolloutRequest req;
      req.rollout_id = "r";
      req.release_id = "cand";
      req.baseline_release_id = "base";
      req.plan = plan_;
      req.actor = "ci";
      req.reason = "harness";
      ASSERT_OK(s->c->StartRollout(req));
    }
    for (int step = 0; step < 240; ++step) {
      step_ = step;
      const std::vector<TelemetryEvent> batch = Batch(step);
      for (Side* s : {&a_, &b_}) {
        s->clock.Advance(kStep);
        ASSERT_OK(s->c->Ingest(batch));
        absl::Status t = s->c->Tick();
        ASSERT_TRUE(t.ok() || absl::IsFailedPrecondition(t)) << t;
      }
      if (!Compare()) return;
      if (Chance(0.05)) {
        b_.c.reset();  // kill -9 after a checkpointed tick
        Open(&b_);
        ++restarts_;
      }
    }
  }

  int restarts() const { return restarts_; }
  int compared() const { return compared_; }

 private:
  struct H {
    std::string id;
    bool chronic = false, boot_loops = false, crash_loops = false;
    int apply_step = -1;
  };
  struct Side {
    FakeClock clock;
    StorePtr store;
    std::unique_ptr<Controller> c;
  };

  int Between(int lo, int hi) {
    return lo + static_cast<int>(rng_() % static_cast<uint64_t>(hi - lo + 1));
  }
  double Uniform() {
    return std::uniform_real_distribution<double>(0, 1)(rng_);
  }
  bool Chance(double p) { return Uniform() < p; }

  void Open(Side* s) {
    ControllerOptions o;
    o.checkpoint_interval = absl::ZeroDuration();
    auto c = Controller::Create(s->store.get(), &s->clock, o);
    ASSERT_OK(c);
    s->c = std::move(*c);
  }

  std::vector<TelemetryEvent> Batch(int step) {
    std::vector<TelemetryEvent> beats, rest;
    for (H& h : hosts_) {
      const bool on = h.apply_step >= 0 && step >= h.apply_step;
      if (h.boot_loops && on) {
        if (step == h.apply_step) {
          rest.push_back(Event(h.id, EventType::kApplying, "cand"));
        }
        continue;  // dead from here on
      }
      beats.push_back(Event(h.id, EventType::kHeartbeat, on ? "cand" : "base"));
      if (step == h.apply_step) {
        rest.push_back(Event(h.id, EventType::kApplying, "cand"));
        rest.push_back(Event(h.id, EventType::kApplied, "cand"));
      }
      if (h.chronic || (h.crash_loops && on) || Chance(0.0005)) {
        rest.push_back(Event(h.id, EventType::kCrash));
        TelemetryEvent boot = Event(h.id, EventType::kBoot);
        boot.clean = false;
        rest.push_back(boot);
      }
      if (Chance(0.002)) {
        TelemetryEvent v = Event(h.id, EventType::kSignal);
        v.signal = Chance(0.5) ? "vendor_signal" : "not_watched";
        rest.push_back(v);
      }
    }
    std::shuffle(rest.begin(), rest.end(), rng_);
    for (size_t i = 0; i < rest.size() / 10; ++i) rest.push_back(rest[i]);
    beats.insert(beats.end(), rest.begin(), rest.end());
    return beats;
  }

  static bool Timed(absl::string_view signal) {
    return signal == kSignalSilent || signal == kSignalApplyStuck;
  }

  // False once both are no longer gated (nothing left to compare).
  bool Compare() {
    auto sa = a_.c->GetRollout("r");
    auto sb = b_.c->GetRollout("r");
    EXPECT_OK(sa);
    EXPECT_OK(sb);
    if (!sa.ok() || !sb.ok()) return false;
    const std::string where =
        absl::StrCat("seed ", seed_, " step ", step_,
                     " (replay: RINGFENCE_HARNESS_SEED=", seed_, ")");
    const Rollout& ra = sa->rollout;
    const Rollout& rb = sb->rollout;
    const auto& d = ra.last_decision();
    const bool timed_halt = ra.state() == config::v1::HALTED &&
                            d.evidence_size() > 0 &&
                            Timed(d.evidence(0).signal());
    if (!timed_halt) {
      EXPECT_EQ(ra.state(), rb.state())
          << where << "\nA: " << ra.reason() << "\nB: " << rb.reason();
    }
    if (ra.state() != rb.state()) return false;
    if (ra.state() != config::v1::RUNNING) {
      const auto& e = rb.last_decision();
      if (ra.state() == config::v1::HALTED && !timed_halt &&
          e.evidence_size() > 0 && !Timed(e.evidence(0).signal())) {
        EXPECT_EQ(d.evidence(0).rule(), e.evidence(0).rule()) << where;
        EXPECT_EQ(d.evidence(0).signal(), e.evidence(0).signal()) << where;
      }
      return false;
    }
    ++compared_;
    const TrackerSnapshot& ta = sa->telemetry;
    const TrackerSnapshot& tb = sb->telemetry;
    EXPECT_EQ(ta.treatment_hosts, tb.treatment_hosts) << where;
    EXPECT_EQ(ta.control_hosts, tb.control_hosts) << where;
    EXPECT_EQ(ta.unwatched_signals, tb.unwatched_signals) << where;
    for (size_t k = 0; k < ta.signals.size(); ++k) {
      const std::string& sig = ta.signals[k];
      if (Timed(sig)) continue;
      SCOPED_TRACE(sig);
      const SignalCounts& x = ta.signal_counts[k];
      const SignalCounts& y = tb.signal_counts[k];
      EXPECT_EQ(x.treatment_affected, y.treatment_affected) << where;
      EXPECT_EQ(x.treatment_pre_affected, y.treatment_pre_affected) << where;
      EXPECT_EQ(x.control_affected, y.control_affected) << where;
      EXPECT_EQ(x.control_at_risk, y.control_at_risk) << where;
      EXPECT_EQ(x.e_value, y.e_value) << where;
      EXPECT_EQ(x.rejected, y.rejected) << where;
      for (size_t st = 0; st < ta.cohorts.size(); ++st) {
        EXPECT_EQ(ta.cohorts[st].exposed, tb.cohorts[st].exposed) << where;
        EXPECT_EQ(ta.cohorts[st].affected[k], tb.cohorts[st].affected[k])
            << where;
        EXPECT_EQ(ta.cohorts[st].pre_affected[k],
                  tb.cohorts[st].pre_affected[k])
            << where;
        EXPECT_DOUBLE_EQ(ta.cohorts[st].control_expected[k],
                         tb.cohorts[st].control_expected[k])
            << where;
      }
    }
    return !::testing::Test::HasFailure();
  }

  uint64_t seed_;
  std::mt19937_64 rng_;
  Plan plan_;
  std::vector<H> hosts_;
  Side a_, b_;
  int step_ = 0;
  int restarts_ = 0;
  int compared_ = 0;
};

TEST(SafetyHarnessTest, RestartEquivalence) {
  int restarts = 0, compared = 0;
  for (uint64_t seed : Seeds(40)) {
    SCOPED_TRACE(seed);
    EquivalenceRun run(seed);
    run.Go();
    restarts += run.restarts();
    compared += run.compared();
    if (HasFailure()) break;
  }
  EXPECT_GT(restarts, 0);
  std::printf("restart equivalence: %d restarts, %d ticks compared\n", restarts,
              compared);
}

std::string TempDir(const std::string& name) {
  const std::string d = (std::filesystem::path(::testing::TempDir()) /
                         absl::StrCat("harness_", getpid(), "_", name))
                            .string();
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

void PrintStats(const char* what) {
  std::printf(
      "%s: %d runs, %d answers checked, %d restarts; %d completed, %d "
      "halted, %d aborted; %d cohorts with a breaker's worth of dead hosts "
      "checked; %d of %d harmless releases halted\n",
      what, stats_.runs, stats_.answers, stats_.restarts, stats_.completed,
      stats_.halted, stats_.aborted, stats_.death_checks, stats_.false_halts,
      stats_.good);
  stats_ = Stats();
}

TEST(SafetyHarnessTest, Invariants) {
  for (uint64_t seed : Seeds(40)) {
    SCOPED_TRACE(seed);
    Config cfg;
    cfg.seed = seed;
    HarnessRun(cfg, "").Go();
    if (HasFailure()) break;
  }
  // The runs must exercise what they check.
  EXPECT_GT(stats_.death_checks, 0);
  EXPECT_GT(stats_.halted, 0);
  EXPECT_GT(stats_.completed, 0);
  PrintStats("invariants");
}

TEST(SafetyHarnessTest, InvariantsOnSqlite) {
  for (uint64_t seed : Seeds(3)) {
    SCOPED_TRACE(seed);
    Config cfg;
    cfg.seed = 1000 + seed;
    cfg.sqlite = true;
    const std::string dir = TempDir(absl::StrCat("sqlite_", seed));
    HarnessRun(cfg, dir).Go();
    std::filesystem::remove_all(dir);
    if (HasFailure()) break;
  }
  PrintStats("invariants on sqlite");
}

}  // namespace
}  // namespace ringfence
