// Gate-safety cases: each situation in which the gate once gave the wrong
// answer (the gate-safety reproductions 01, 03, 12, 17, 18, 19, 20, 21 and
// rule K9 of the gate-safety change), replayed against the library with the
// right answer asserted. Parameterized over every Store implementation.
//
// The hosts are emulated here, one poll at a time, so that each case can
// say exactly what a host sends (or does not send): a poll asks Assign()
// for the content type, loads what it is told (`applying`, `applied`) and
// heartbeats on what it runs; a case adds crashes, boot loops or silence.
// Time is a FakeClock; a round of polls is followed by the gate's Tick().
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/policy.h"
#include "ringfence/sim.h"
#include "status_matchers.h"
#include "store_factory.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::ringfence::testing::StoreFactory;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kType[] = "channel-file/291";

// Case 01: a dogfood ring, then everyone; the built-in rules (no signals
// listed). Timeouts in seconds.
constexpr char kNoControlPlan[] = R"pb(
  name: "no-control"
  policy {
    silence_timeout { seconds: 4 }
    apply_timeout { seconds: 4 }
    max_staleness { seconds: 5 }
    min_exposed_hosts: 3
  }
  stages {
    name: "dogfood"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 5 }
    pacing {
      initial_hosts: 8
      healthy_after { seconds: 1 }
    }
  }
  stages {
    name: "fleet"
    audience { percent: 100 }
    bake_time { seconds: 5 }
    pacing {
      initial_hosts: 8
      healthy_after { seconds: 1 }
    }
  }
)pb";

// Case 03: the built-in rules (sanity twin of kVendorSignalPlan).
constexpr char kDefaultsPlan[] = R"pb(
  name: "default-signals"
  policy {
    silence_timeout { seconds: 4 }
    apply_timeout { seconds: 4 }
    max_staleness { seconds: 5 }
    min_exposed_hosts: 3
  }
  stages {
    name: "dogfood"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 5 }
    pacing {
      initial_hosts: 5
      healthy_after { seconds: 1 }
    }
  }
  stages {
    name: "fleet"
    audience { percent: 100 }
    bake_time { seconds: 5 }
    pacing {
      initial_hosts: 10
      growth_per_healthy_host: 2
      healthy_after { seconds: 1 }
    }
  }
)pb";

// Case 03: the same with one vendor signal of the plan's own.
constexpr char kVendorSignalPlan[] = R"pb(
  name: "custom-signal-only"
  policy {
    silence_timeout { seconds: 4 }
    apply_timeout { seconds: 4 }
    max_staleness { seconds: 5 }
    min_exposed_hosts: 3
    signals { signal: "latency_regression" max_affected_hosts: 3 }
  }
  stages {
    name: "dogfood"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 5 }
    pacing {
      initial_hosts: 5
      healthy_after { seconds: 1 }
    }
  }
  stages {
    name: "fleet"
    audience { percent: 100 }
    bake_time { seconds: 5 }
    pacing {
      initial_hosts: 10
      growth_per_healthy_host: 2
      healthy_after { seconds: 1 }
    }
  }
)pb";

// Cases 12, 17, 18, 19: dogfood breakers at 3 hosts and a 10-minute bake
// (the gate never promotes during a case), then everyone. Case 19 bakes
// both stages 3 s.
Plan BreakerPlan(absl::Duration bake = absl::Minutes(10)) {
  Plan plan;
  EXPECT_TRUE(
      LoadMessageFile(RINGFENCE_TESTDATA_DIR "/plans/breakers.textproto", &plan)
          .ok());
  for (Stage& s : *plan.mutable_stages()) {
    *s.mutable_bake_time() = ToProtoDuration(bake);
  }
  return plan;
}

// Case 21: dogfood, 10 %, everyone; the built-in rules.
constexpr char kCheckInPlan[] = R"pb(
  name: "bootloop-checkin"
  policy {
    silence_timeout { seconds: 4 }
    apply_timeout { seconds: 4 }
    max_staleness { seconds: 5 }
    min_exposed_hosts: 3
  }
  stages {
    name: "dogfood"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 3 }
    pacing {
      initial_hosts: 5
      healthy_after { seconds: 1 }
    }
  }
  stages {
    name: "10pct"
    audience { percent: 10 }
    bake_time { seconds: 3 }
    pacing {
      initial_hosts: 5
      healthy_after { seconds: 1 }
    }
  }
  stages {
    name: "fleet"
    audience { percent: 100 }
    bake_time { seconds: 3 }
    pacing {
      initial_hosts: 5
      growth_per_healthy_host: 2
      healthy_after { seconds: 1 }
    }
  }
)pb";

// Case 20: a dogfood ring, then a paced stage for everyone; the built-in
// rules, minute-scale timeouts.
constexpr char kChronicPlan[] = R"pb(
  name: "chronic"
  policy {
    silence_timeout { seconds: 60 }
    apply_timeout { seconds: 60 }
    max_staleness { seconds: 30 }
    min_exposed_hosts: 3
  }
  stages {
    name: "dogfood"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 120 }
    pacing {
      initial_hosts: 5
      healthy_after { seconds: 10 }
    }
  }
  stages {
    name: "fleet"
    audience { percent: 100 }
    bake_time { seconds: 300 }
    pacing {
      initial_hosts: 10
      growth_per_healthy_host: 1
      healthy_after { seconds: 10 }
    }
  }
)pb";

Plan ParsePlan(const char* text) {
  Plan plan;
  EXPECT_OK(ParseTextOrJson(text, &plan));
  return plan;
}

Release MakeRelease(const std::string& id) {
  Release r;
  r.set_id(id);
  r.set_content_type(kType);
  r.set_version(id);
  r.set_digest_sha256(std::string(64, 'a'));
  r.set_size_bytes(1234);
  return r;
}

MATCHER_P2(EvidenceIs, rule, signal,
           absl::StrCat("evidence of rule ", rule, " on signal ", signal)) {
  *result_listener << "rule " << arg.rule() << ", signal " << arg.signal();
  return arg.rule() == rule && arg.signal() == signal;
}

// One emulated host.
struct TestHost {
  HostInfo info;
  // The release it runs ("" = none of the content type).
  std::string running;
  // Died loading a release: never polls or reports again.
  bool dead = false;
  // Boot-looping on `running`: at every boot it checks in (Assign) and
  // dies again before sending anything.
  bool looping = false;
  // The answer to its last poll.
  Assignment last;
};

class GateSafetyTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    dir_ =
        (std::filesystem::path(::testing::TempDir()) /
         absl::StrCat(
             "gate_safety_test_", getpid(), "_", GetParam().name, "_",
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
            .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    // Tick() checkpoints every rollout's evidence this often (case 12).
    options_.checkpoint_interval = absl::Seconds(1);
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
    NewController();
  }

  void TearDown() override {
    controller_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void NewController() {
    controller_.reset();
    auto c = Controller::Create(store_.get(), &clock_, options_);
    ASSERT_OK(c);
    controller_ = std::move(*c);
  }

  // A process restart: a new controller over the same data (a reopened
  // store when the store persists).
  void Restart() {
    controller_.reset();
    if (GetParam().persistent) {
      store_.reset();
      store_ = GetParam().open(dir_);
      ASSERT_NE(store_, nullptr);
    }
    NewController();
  }

  void CreateReleases(const std::vector<std::string>& ids) {
    for (const std::string& id : ids) {
      ASSERT_OK(controller_->CreateRelease(MakeRelease(id), "ci"));
    }
  }

  absl::StatusOr<Rollout> Start(const std::string& release, const Plan& plan,
                                const std::string& baseline = "",
                                bool allow_no_baseline = false) {
    StartRolloutRequest req;
    req.release_id = release;
    req.plan = plan;
    req.baseline_release_id = baseline;
    req.allow_no_baseline = allow_no_baseline;
    req.actor = "ci";
    req.reason = "gate-safety case";
    return controller_->StartRollout(req);
  }

  // Makes `release` the content type's proven baseline, as a release every
  // host already runs becomes one: a rollout promoted to completion.
  void Adopt(const std::string& release) {
    auto r = Start(release, BreakerPlan(), "",
                   /*allow_no_baseline=*/true);
    ASSERT_OK(r);
    auto done = controller_->PromoteToCompletion(r->id(), "ci", "adopt");
    ASSERT_OK(done);
    ASSERT_EQ(done->state(), config::v1::COMPLETED);
  }

  static HostInfo MakeHost(const std::string& id, bool dogfood) {
    HostInfo h;
    h.host_id = id;
    h.tenant = "tenant-1";
    if (dogfood) h.labels.push_back("ring:dogfood");
    h.agent_version = "7.11.0";
    h.platform = "windows";
    return h;
  }

  // Adds hosts "<prefix>-0" .. "<prefix>-<n-1>" running `running`.
  void AddHosts(const std::string& prefix, int n, bool dogfood,
                const std::string& running) {
    for (int i = 0; i < n; ++i) {
      TestHost h;
      h.info = MakeHost(absl::StrCat(prefix, "-", i), dogfood);
      h.running = running;
      hosts_.push_back(std::move(h));
    }
  }

  TestHost& Host(const std::string& id) {
    for (TestHost& h : hosts_) {
      if (h.info.host_id == id) return h;
    }
    ADD_FAILURE() << "no host " << id;
    return hosts_.front();
  }

  TelemetryEvent Event(const std::string& host, EventType type,
                       const std::string& release = "") const {
    TelemetryEvent e;
    e.host_id = host;
    e.type = type;
    e.release_id = release;
    e.time = clock_.Now();
    return e;
  }
  TelemetryEvent Crash(const std::string& host) const {
    return Event(host, EventType::kCrash);
  }
  TelemetryEvent UncleanBoot(const std::string& host) const {
    TelemetryEvent e = Event(host, EventType::kBoot);
    e.clean = false;
    return e;
  }

  // One poll of `h`; its events are appended to `batch`.
  void Poll(TestHost& h, std::vector<TelemetryEvent>* batch) {
    if (h.dead) return;
    h.last = controller_->Assign(h.info, kType);
    std::string told = h.running;
    if (h.last.unload) told.clear();
    if (h.last.release != nullptr) told = h.last.release->id();
    if (h.looping) {
      if (told == h.running) return;  // loads it again and dies again
      h.looping = false;              // told another release: recovers
    }
    if (told != h.running) {
      if (!told.empty() && told == boot_loop_release_) {
        h.running = told;
        h.looping = true;
        return;
      }
      if (!told.empty()) {
        batch->push_back(Event(h.info.host_id, EventType::kApplying, told));
        if (told == dies_loading_release_) {
          h.running = told;
          h.dead = true;
          return;
        }
        batch->push_back(Event(h.info.host_id, EventType::kApplied, told));
      }
      h.running = told;
    }
    batch->push_back(Event(h.info.host_id, EventType::kHeartbeat, h.running));
    if (behavior_) behavior_(h, batch);
  }

  // Advances the clock by `step`, polls every host once, ingests their
  // events as one batch, and ticks the gate.
  void Round(absl::Duration step = absl::Milliseconds(500)) {
    clock_.Advance(step);
    std::vector<TelemetryEvent> batch;
    for (TestHost& h : hosts_) Poll(h, &batch);
    if (!batch.empty()) {
      EXPECT_OK(controller_->Ingest(batch));
    }
    EXPECT_OK(controller_->Tick());
  }

  // Rounds until `done` (checked after each), for at most `limit`.
  bool RunUntil(const std::function<bool()>& done, absl::Duration limit,
                absl::Duration step = absl::Milliseconds(500)) {
    for (absl::Duration t; t < limit; t += step) {
      Round(step);
      if (done()) return true;
    }
    return false;
  }
  void RunFor(absl::Duration d, absl::Duration step = absl::Milliseconds(500)) {
    RunUntil([] { return false; }, d, step);
  }

  void Ingest(const std::vector<TelemetryEvent>& events) {
    EXPECT_OK(controller_->Ingest(events));
  }

  RolloutStatus Status(const std::string& id) {
    auto s = controller_->GetRollout(id);
    EXPECT_OK(s);
    return s.ok() ? *s : RolloutStatus();
  }
  Rollout State(const std::string& id) { return Status(id).rollout; }
  bool IsRunning(const std::string& id) {
    return State(id).state() == config::v1::RUNNING;
  }

  static int SignalIndex(const TrackerSnapshot& t, absl::string_view signal) {
    for (size_t i = 0; i < t.signals.size(); ++i) {
      if (t.signals[i] == signal) return static_cast<int>(i);
    }
    ADD_FAILURE() << "no signal " << signal;
    return 0;
  }
  // Hosts of `stage`'s cohort affected by `signal` after their exposure.
  uint64_t Affected(const std::string& id, int stage,
                    absl::string_view signal) {
    const TrackerSnapshot t = Status(id).telemetry;
    return t.cohorts.at(stage).affected[SignalIndex(t, signal)];
  }
  // ... and those that showed it before their exposure.
  uint64_t PreAffected(const std::string& id, int stage,
                       absl::string_view signal) {
    const TrackerSnapshot t = Status(id).telemetry;
    return t.cohorts.at(stage).pre_affected[SignalIndex(t, signal)];
  }

  int Running(const std::string& release) const {
    int n = 0;
    for (const TestHost& h : hosts_) n += h.running == release;
    return n;
  }

  std::vector<Decision> Decisions(const std::string& id) {
    auto d = controller_->ListDecisions(id);
    EXPECT_OK(d);
    return d.ok() ? *d : std::vector<Decision>();
  }
  bool EverPromoted(const std::string& id) {
    for (const Decision& d : Decisions(id)) {
      if (d.verdict() == config::v1::PROMOTE) return true;
    }
    return false;
  }

  // The audit entries of rollout `id` (all if empty).
  std::vector<AuditEntry> Audit(const std::string& id = "") {
    auto a = store_->ReadAudit(0, 100000);
    EXPECT_OK(a);
    std::vector<AuditEntry> out;
    if (!a.ok()) return out;
    for (AuditEntry& e : *a) {
      if (id.empty() || e.rollout_id() == id) out.push_back(std::move(e));
    }
    return out;
  }
  std::vector<std::string> Actions(const std::string& id) {
    std::vector<std::string> out;
    for (const AuditEntry& e : Audit(id)) out.push_back(e.action());
    return out;
  }

  // Case 03: 5 canaries and 30 control hosts; every host told v2 dies
  // loading it. The rollout must halt in dogfood on silence or apply_stuck,
  // and the plan's effective dogfood policy keeps every built-in signal.
  void ExpectDyingCanariesHaltInDogfood(const Plan& plan) {
    std::vector<std::string> signals;
    const GatePolicy dogfood = EffectivePolicy(plan, 0);
    for (const SignalRule& rule : dogfood.signals()) {
      signals.push_back(rule.signal());
    }
    EXPECT_THAT(signals, ::testing::IsSupersetOf({"crash", "unclean_reboot",
                                                  "silent", "apply_stuck"}));
    CreateReleases({"v1", "v2"});
    dies_loading_release_ = "v2";
    auto r = Start("v2", plan, "v1");
    ASSERT_OK(r);
    AddHosts("dog", 5, /*dogfood=*/true, "v1");
    AddHosts("ctl", 30, /*dogfood=*/false, "v1");
    RunUntil([&] { return !IsRunning(r->id()); }, absl::Seconds(60));

    const Rollout st = State(r->id());
    EXPECT_EQ(st.state(), config::v1::HALTED);
    EXPECT_EQ(st.stage(), 0u);
    EXPECT_THAT(st.last_decision().evidence(),
                Contains(::testing::AnyOf(
                    EvidenceIs("circuit_breaker", "silent"),
                    EvidenceIs("circuit_breaker", "apply_stuck"))));
    int dead = 0;
    for (const TestHost& h : hosts_) dead += h.dead;
    EXPECT_EQ(dead, 5);
    EXPECT_FALSE(EverPromoted(r->id()));
  }

  // Case 12: 6 canaries come up on v2 (applied, heartbeats naming it) next
  // to 20 control hosts; 3 s of checkpoints; a restart if `restart`. Then,
  // for 10 s, the canaries either check in 3 times before they heartbeat
  // on v2 again (`check_ins_first`), or heartbeat without naming a release.
  // Nothing about them changed: no apply_stuck, no silence, no halt.
  void ExpectUpCanariesStayUp(bool restart, bool check_ins_first) {
    CreateReleases({"v1", "v2"});
    auto r = Start("v2", BreakerPlan(), "v1");
    ASSERT_OK(r);
    const std::string id = r->id();
    AddHosts("dog", 6, /*dogfood=*/true, "v1");
    AddHosts("h", 20, /*dogfood=*/false, "v1");
    ASSERT_TRUE(
        RunUntil([&] { return Running("v2") == 6; }, absl::Seconds(10)));
    RunFor(absl::Seconds(3));
    if (restart) Restart();
    for (int k = 0; k < 20; ++k) {
      clock_.Advance(absl::Milliseconds(500));
      std::vector<TelemetryEvent> batch;
      for (TestHost& h : hosts_) {
        const bool canary = h.running == "v2";
        if (canary && check_ins_first && k < 3) {
          controller_->Assign(h.info, kType);  // a check-in, nothing else
          continue;
        }
        batch.push_back(Event(h.info.host_id, EventType::kHeartbeat,
                              canary && !check_ins_first ? "" : h.running));
      }
      Ingest(batch);
      ASSERT_OK(controller_->Tick());
    }
    const Rollout st = State(id);
    EXPECT_EQ(st.state(), config::v1::RUNNING) << st.reason();
    EXPECT_EQ(Affected(id, 0, "apply_stuck"), 0u);
    EXPECT_EQ(Affected(id, 0, "silent"), 0u);
  }

  std::string dir_;
  FakeClock clock_;
  ControllerOptions options_;
  StorePtr store_;
  std::unique_ptr<Controller> controller_;
  std::vector<TestHost> hosts_;
  // A release that boot-loops the hosts told it (they check in at every
  // boot and send nothing), and one they die loading (after `applying`).
  std::string boot_loop_release_;
  std::string dies_loading_release_;
  // What a live host sends after its heartbeat (crashes, ...).
  std::function<void(const TestHost&, std::vector<TelemetryEvent>*)> behavior_;
};

// ---- Case 01: no control arm ----------------------------------------------

// Every reporting host is a canary and all of them crash on the release:
// with no control host at all, the built-in crash breaker is absolute and
// halts in dogfood; the gate never promotes.
TEST_P(GateSafetyTest, Case01CrashingCanariesWithNoControlHalt) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", ParsePlan(kNoControlPlan), "v1");
  ASSERT_OK(r);
  AddHosts("dog", 8, /*dogfood=*/true, "v1");
  behavior_ = [&](const TestHost& h, std::vector<TelemetryEvent>* batch) {
    if (h.running == "v2") batch->push_back(Crash(h.info.host_id));
  };
  RunUntil([&] { return !IsRunning(r->id()) || State(r->id()).stage() > 0; },
           absl::Seconds(45));

  const RolloutStatus st = Status(r->id());
  EXPECT_EQ(st.telemetry.control_hosts, 0u);
  EXPECT_EQ(st.rollout.state(), config::v1::HALTED);
  EXPECT_EQ(st.rollout.stage(), 0u);
  EXPECT_THAT(st.rollout.last_decision().evidence(),
              Contains(EvidenceIs("circuit_breaker", "crash")));
  EXPECT_THAT(st.rollout.reason(),
              HasSubstr("nothing in the control arm explains them"));
  EXPECT_FALSE(EverPromoted(r->id()));
}

// The sanity twin: the same crashing canaries next to 20 clean control hosts
// halt as well.
TEST_P(GateSafetyTest, Case01CrashingCanariesWithCleanControlHalt) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", ParsePlan(kNoControlPlan), "v1");
  ASSERT_OK(r);
  AddHosts("dog", 8, /*dogfood=*/true, "v1");
  AddHosts("ctl", 20, /*dogfood=*/false, "v1");
  behavior_ = [&](const TestHost& h, std::vector<TelemetryEvent>* batch) {
    if (h.running == "v2") batch->push_back(Crash(h.info.host_id));
  };
  RunUntil([&] { return !IsRunning(r->id()) || State(r->id()).stage() > 0; },
           absl::Seconds(45));

  const RolloutStatus st = Status(r->id());
  EXPECT_EQ(st.telemetry.control_hosts, 20u);
  EXPECT_EQ(st.rollout.state(), config::v1::HALTED);
  EXPECT_EQ(st.rollout.stage(), 0u);
  EXPECT_THAT(st.rollout.last_decision().evidence(),
              Contains(EvidenceIs("circuit_breaker", "crash")));
  EXPECT_FALSE(EverPromoted(r->id()));
}

// With the crash breaker switched off, crash is judged only by comparison
// with a control arm that does not exist: the gate holds ("not_judged")
// after the bake time instead of promoting.
TEST_P(GateSafetyTest, Case01NoControlAndNoCrashBreakerHoldsNotJudged) {
  CreateReleases({"v1", "v2"});
  Plan plan = ParsePlan(kNoControlPlan);
  SignalRule* crash = plan.mutable_policy()->add_signals();
  crash->set_signal("crash");
  crash->set_max_affected_hosts(0);
  auto r = Start("v2", plan, "v1");
  ASSERT_OK(r);
  AddHosts("dog", 8, /*dogfood=*/true, "v1");
  RunFor(absl::Seconds(40));  // bake 5 s, freshness 4.4 + 10 s

  const Rollout st = State(r->id());
  EXPECT_EQ(st.state(), config::v1::RUNNING);
  EXPECT_EQ(st.stage(), 0u);
  EXPECT_EQ(st.last_decision().verdict(), config::v1::HOLD);
  EXPECT_THAT(st.last_decision().evidence(),
              Contains(EvidenceIs("not_judged", "crash")));
  EXPECT_THAT(st.last_decision().summary(),
              HasSubstr("no control host is at risk to compare with"));
  EXPECT_FALSE(EverPromoted(r->id()));
}

// ---- The control arm is the release's own population ----------------------

// A release for windows hosts only, judged by comparison with control alone
// (the crash breaker off): the canaries crash on it, no windows host in
// control crashes, and linux hosts, which check in for the content type but
// are not targeted, crash at every poll. They are not the release's control:
// counted there, their crash rate would make the release look little worse
// than what it replaces.
TEST_P(GateSafetyTest, HostsTheReleaseDoesNotTargetAreNotItsControl) {
  CreateReleases({"v1"});
  Release v2 = MakeRelease("v2");
  v2.mutable_targeting()->add_platforms("windows");
  ASSERT_OK(controller_->CreateRelease(v2, "ci"));
  Plan plan = ParsePlan(kNoControlPlan);
  SignalRule* crash = plan.mutable_policy()->add_signals();
  crash->set_signal("crash");
  crash->set_max_affected_hosts(0);
  auto r = Start("v2", plan, "v1");
  ASSERT_OK(r);
  AddHosts("dog", 8, /*dogfood=*/true, "v1");
  AddHosts("win", 20, /*dogfood=*/false, "v1");
  AddHosts("linux", 40, /*dogfood=*/false, "v1");
  for (TestHost& h : hosts_) {
    if (h.info.host_id.rfind("linux-", 0) == 0) h.info.platform = "linux";
  }
  behavior_ = [&](const TestHost& h, std::vector<TelemetryEvent>* batch) {
    if (h.running == "v2" || h.info.host_id.rfind("linux-", 0) == 0) {
      batch->push_back(Crash(h.info.host_id));
    }
  };
  RunUntil([&] { return !IsRunning(r->id()) || State(r->id()).stage() > 0; },
           absl::Minutes(2));

  const RolloutStatus st = Status(r->id());
  EXPECT_EQ(st.telemetry.control_hosts, 20u);
  EXPECT_EQ(st.telemetry.signal_counts[SignalIndex(st.telemetry, "crash")]
                .control_affected,
            0u);
  EXPECT_GT(st.telemetry.outside_population_events, 0u);
  EXPECT_EQ(st.rollout.state(), config::v1::HALTED)
      << st.rollout.last_decision().summary();
  EXPECT_FALSE(EverPromoted(r->id()));
  for (const TestHost& h : hosts_) {
    if (h.info.host_id.rfind("linux-", 0) == 0) {
      EXPECT_EQ(h.last.reason, AssignReason::kNotTargeted);
    }
  }
}

// ---- Case 03: a vendor signal keeps the built-in rules -------------------

// A release that kills every host loading it (`applying`, then nothing)
// halts in dogfood on silence (or apply_stuck), with and without a vendor
// signal rule in the plan's policy: the vendor rule adds to the built-in
// ones.
TEST_P(GateSafetyTest, Case03VendorSignalKeepsBuiltinRulesAndHaltsBootLoop) {
  ExpectDyingCanariesHaltInDogfood(ParsePlan(kVendorSignalPlan));
}

// The sanity twin: the same plan without the vendor signal.
TEST_P(GateSafetyTest, Case03DefaultRulesHaltBootLoop) {
  ExpectDyingCanariesHaltInDogfood(ParsePlan(kDefaultsPlan));
}

// A plan that leaves crash or silent without any halting rule is refused,
// naming the field; nothing is created.
TEST_P(GateSafetyTest, Case03PlanWithoutCrashOrSilentRuleIsRefused) {
  CreateReleases({"v1", "v2"});
  Plan no_crash = ParsePlan(kVendorSignalPlan);
  SignalRule* crash = no_crash.mutable_policy()->add_signals();
  crash->set_signal("crash");
  crash->set_max_affected_hosts(0);
  crash->set_max_affected_fraction(0);
  crash->set_compare_with_control(false);
  EXPECT_THAT(
      Start("v2", no_crash, "v1"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("plan.policy.signals[1]"),
                     HasSubstr("leaves \"crash\" with no halting rule"))));

  Plan no_silent = ParsePlan(kVendorSignalPlan);
  SignalRule* silent =
      no_silent.mutable_stages(1)->mutable_policy()->add_signals();
  silent->set_signal("silent");
  silent->set_max_affected_hosts(0);
  silent->set_compare_with_control(false);
  EXPECT_THAT(
      Start("v2", no_silent, "v1"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("plan.stages[1].policy.signals[0]"),
                     HasSubstr("leaves \"silent\" with no halting rule in "
                               "stage fleet"))));

  auto rollouts = controller_->ListRollouts();
  ASSERT_OK(rollouts);
  EXPECT_TRUE(rollouts->empty());
}

// Crash and silent cannot be disabled; another built-in signal can, only
// with a reason, which the start's audit entry records.
TEST_P(GateSafetyTest, Case03DisablingABuiltinSignalNeedsAReasonOnRecord) {
  CreateReleases({"v1", "v2"});
  for (const char* signal : {"crash", "silent"}) {
    Plan plan = ParsePlan(kVendorSignalPlan);
    SignalRule* rule = plan.mutable_policy()->add_signals();
    rule->set_signal(signal);
    rule->set_disabled(true);
    rule->set_disabled_reason("noisy");
    EXPECT_THAT(Start("v2", plan, "v1"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("plan.policy.signals[1].disabled"),
                               HasSubstr("cannot be disabled"))))
        << signal;
  }

  Plan plan = ParsePlan(kVendorSignalPlan);
  SignalRule* unclean = plan.mutable_policy()->add_signals();
  unclean->set_signal("unclean_reboot");
  unclean->set_disabled(true);
  EXPECT_THAT(Start("v2", plan, "v1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("plan.policy.signals[1].disabled_reason: "
                                 "required with disabled: true")));

  unclean->set_disabled_reason("agent 7.11 reports every reboot as unclean");
  auto r = Start("v2", plan, "v1");
  ASSERT_OK(r);
  const GatePolicy dogfood = EffectivePolicy(r->plan(), 0);
  for (const SignalRule& rule : dogfood.signals()) {
    EXPECT_NE(rule.signal(), "unclean_reboot");
  }
  const std::vector<AuditEntry> audit = Audit(r->id());
  ASSERT_FALSE(audit.empty());
  EXPECT_EQ(audit[0].action(), "start");
  EXPECT_THAT(audit[0].reason(),
              HasSubstr("built-in signal \"unclean_reboot\" switched off in "
                        "dogfood: agent 7.11 reports every reboot as "
                        "unclean"));
}

// ---- Case 12: a restart keeps the evidence -------------------------------

// 2 crashed canaries, a checkpoint, a restart, a 3rd crash: the 3-host
// breaker trips (2 remembered + 1). A crash of an already counted host after
// the restart does not count twice. The halt survives another restart, and
// every host, also one never seen before, is told the baseline.
TEST_P(GateSafetyTest, Case12RestartKeepsCrashEvidenceExactly) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", BreakerPlan(), "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  AddHosts("dog", 6, /*dogfood=*/true, "v1");
  AddHosts("h", 20, /*dogfood=*/false, "v1");
  ASSERT_TRUE(RunUntil([&] { return Running("v2") == 6; }, absl::Seconds(10)));

  Ingest({Crash("dog-0"), Crash("dog-1")});
  RunFor(absl::Seconds(3));  // checkpoints every second
  ASSERT_EQ(State(id).state(), config::v1::RUNNING);
  ASSERT_EQ(Affected(id, 0, "crash"), 2u);

  Restart();
  EXPECT_EQ(State(id).state(), config::v1::RUNNING);
  EXPECT_EQ(Affected(id, 0, "crash"), 2u);
  EXPECT_EQ(Status(id).telemetry.treatment_hosts, 6u);

  // An already counted host crashes again: still 2.
  Ingest({Crash("dog-0")});
  RunFor(absl::Seconds(2));
  EXPECT_EQ(State(id).state(), config::v1::RUNNING);
  EXPECT_EQ(Affected(id, 0, "crash"), 2u);

  Ingest({Crash("dog-2")});
  ASSERT_OK(controller_->Tick());
  const Rollout halted = State(id);
  EXPECT_EQ(halted.state(), config::v1::HALTED);
  EXPECT_EQ(halted.stage(), 0u);
  ASSERT_GT(halted.last_decision().evidence_size(), 0);
  EXPECT_THAT(
      halted.last_decision().evidence(),
      Contains(AllOf(EvidenceIs("circuit_breaker", "crash"),
                     ::testing::Property(&Evidence::affected_hosts, 3u))));

  Restart();
  const Rollout after = State(id);
  EXPECT_EQ(after.state(), config::v1::HALTED);
  EXPECT_EQ(after.version(), halted.version());
  AddHosts("new", 3, /*dogfood=*/true, "");
  AddHosts("newer", 3, /*dogfood=*/false, "");
  for (const TestHost& h : hosts_) {
    const Assignment a = controller_->Assign(h.info, kType);
    ASSERT_NE(a.release, nullptr) << h.info.host_id;
    EXPECT_EQ(a.release->id(), "v1") << h.info.host_id;
    EXPECT_EQ(a.reason, AssignReason::kRolledBack) << h.info.host_id;
    EXPECT_FALSE(a.unload);
  }
}

// Each restart keeps what it counted: one crash between each of two
// restarts adds up to the breaker.
TEST_P(GateSafetyTest, Case12CrashesAcrossTwoRestartsAddUp) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", BreakerPlan(), "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  AddHosts("dog", 6, /*dogfood=*/true, "v1");
  AddHosts("h", 20, /*dogfood=*/false, "v1");
  ASSERT_TRUE(RunUntil([&] { return Running("v2") == 6; }, absl::Seconds(10)));
  for (const char* host : {"dog-3", "dog-4"}) {
    Ingest({Crash(host)});
    RunFor(absl::Seconds(2));
    ASSERT_EQ(State(id).state(), config::v1::RUNNING);
    Restart();
    RunFor(absl::Seconds(1));
  }
  EXPECT_EQ(Affected(id, 0, "crash"), 2u);
  Ingest({Crash("dog-5")});
  ASSERT_OK(controller_->Tick());
  EXPECT_EQ(State(id).state(), config::v1::HALTED);
  EXPECT_THAT(State(id).last_decision().evidence(),
              Contains(EvidenceIs("circuit_breaker", "crash")));
}

// Case 12, apply progress. Canaries that came up on the release (applied,
// heartbeats naming it) stay up across a restart: what they send afterwards
// is judged as before it. Two ways a restart could change the decision:
// check-ins before the next heartbeat on the release (boot-loop attempts of
// a host that never came up), and heartbeats that do not name the release
// (a sign of life only of a host known to have applied it).
// (A host coming up writes its evidence record, so a restart knows it.)
TEST_P(GateSafetyTest, Case12CheckInsOfUpCanariesAreNoBootLoop) {
  ExpectUpCanariesStayUp(/*restart=*/false, /*check_ins_first=*/true);
}
TEST_P(GateSafetyTest, Case12RestartRemembersThatCanariesCameUp) {
  ExpectUpCanariesStayUp(/*restart=*/true, /*check_ins_first=*/true);
}
TEST_P(GateSafetyTest, Case12HeartbeatsWithoutReleaseKeepUpCanariesAlive) {
  ExpectUpCanariesStayUp(/*restart=*/false, /*check_ins_first=*/false);
}
TEST_P(GateSafetyTest, Case12RestartKeepsUpCanariesAliveWithoutReleaseIds) {
  ExpectUpCanariesStayUp(/*restart=*/true, /*check_ins_first=*/false);
}

// ---- Case 17: the first release of a content type ------------------------

// With no baseline at all, the start must acknowledge that a halt unloads:
// without allow_no_baseline it is refused, naming baseline_release_id.
TEST_P(GateSafetyTest, Case17FirstReleaseNeedsAllowNoBaseline) {
  CreateReleases({"v1"});
  EXPECT_THAT(Start("v1", BreakerPlan()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("baseline_release_id: no release of "
                                       "channel-file/291 completed a rollout"),
                             HasSubstr("allow_no_baseline"))));
  auto rollouts = controller_->ListRollouts();
  ASSERT_OK(rollouts);
  EXPECT_TRUE(rollouts->empty());
}

// Acknowledged, the rollout runs; its halt tells every host, also hosts
// never seen, to unload the content type (no release to fall back to).
TEST_P(GateSafetyTest, Case17HaltedFirstReleaseTellsEveryHostToUnload) {
  CreateReleases({"v1"});
  auto r = Start("v1", BreakerPlan(), "", /*allow_no_baseline=*/true);
  ASSERT_OK(r);
  EXPECT_EQ(r->state(), config::v1::RUNNING);
  EXPECT_EQ(r->baseline_release_id(), "");
  const std::vector<AuditEntry> audit = Audit(r->id());
  ASSERT_FALSE(audit.empty());
  EXPECT_THAT(audit[0].reason(),
              HasSubstr("no baseline (no earlier release of channel-file/291 "
                        "completed a rollout): a halt or abort tells every "
                        "host to unload channel-file/291"));

  AddHosts("dog", 5, /*dogfood=*/true, "");
  AddHosts("h", 20, /*dogfood=*/false, "");
  ASSERT_TRUE(RunUntil([&] { return Running("v1") == 5; }, absl::Seconds(10)));
  // Outside the rollout, meanwhile: nothing to run, nothing to unload.
  const TestHost& outside = Host("h-0");
  EXPECT_EQ(outside.last.release, nullptr);
  EXPECT_FALSE(outside.last.unload);
  EXPECT_EQ(outside.last.reason, AssignReason::kNotYet);

  Ingest({Crash("dog-0"), Crash("dog-1"), Crash("dog-2")});
  ASSERT_OK(controller_->Tick());
  ASSERT_EQ(State(r->id()).state(), config::v1::HALTED);
  AddHosts("new", 2, /*dogfood=*/true, "");
  Round();
  for (const TestHost& h : hosts_) {
    EXPECT_EQ(h.last.release, nullptr) << h.info.host_id;
    EXPECT_TRUE(h.last.unload) << h.info.host_id;
    EXPECT_EQ(h.last.reason, AssignReason::kRolledBack) << h.info.host_id;
  }
  EXPECT_EQ(Running("v1"), 0);
  // A host the release could never reach (outside its targeting) is not
  // told to unload what it runs: it keeps it.
  HostInfo old_agent = hosts_[0].info;
  old_agent.host_id = "old-agent";
  old_agent.agent_version = "6.0.0";
  Release targeted = MakeRelease("v1-targeted");
  targeted.mutable_targeting()->set_min_agent_version("7.0");
  ASSERT_OK(controller_->CreateRelease(targeted, "ci"));
  auto r2 = Start("v1-targeted", BreakerPlan(), "", /*allow_no_baseline=*/true);
  ASSERT_OK(r2);
  ASSERT_OK(controller_->Abort(r2->id(), "alice", "wrong file"));
  const Assignment a = controller_->Assign(old_agent, kType);
  EXPECT_EQ(a.release, nullptr);
  EXPECT_FALSE(a.unload);
  EXPECT_EQ(a.reason, AssignReason::kRolledBack);
  EXPECT_TRUE(controller_->Assign(hosts_[0].info, kType).unload);
}

// An abort of the first release, and an emergency stop of its content type,
// answer `unload` too.
TEST_P(GateSafetyTest, Case17AbortAndEmergencyStopOfFirstReleaseUnload) {
  CreateReleases({"v1"});
  auto r = Start("v1", BreakerPlan(), "", /*allow_no_baseline=*/true);
  ASSERT_OK(r);
  AddHosts("dog", 5, /*dogfood=*/true, "");
  ASSERT_TRUE(RunUntil([&] { return Running("v1") == 5; }, absl::Seconds(10)));
  ASSERT_OK(controller_->Abort(r->id(), "alice", "wrong file"));
  for (const TestHost& h : hosts_) {
    const Assignment a = controller_->Assign(h.info, kType);
    EXPECT_EQ(a.release, nullptr);
    EXPECT_TRUE(a.unload);
    EXPECT_EQ(a.reason, AssignReason::kRolledBack);
  }
  ASSERT_OK(controller_->EmergencyStop(kType, "alice", "bad channel file"));
  const Assignment a = controller_->Assign(MakeHost("dog-0", true), kType);
  EXPECT_EQ(a.release, nullptr);
  EXPECT_TRUE(a.unload);
  EXPECT_EQ(a.reason, AssignReason::kEmergencyStop);
}

// ---- Case 18: a baseline must be proven ----------------------------------

// A release the gate halted is no baseline.
TEST_P(GateSafetyTest, Case18HaltedReleaseIsRefusedAsBaseline) {
  CreateReleases({"v1", "vbad", "v3"});
  auto bad = Start("vbad", BreakerPlan(), "v1");
  ASSERT_OK(bad);
  AddHosts("dog", 5, /*dogfood=*/true, "v1");
  AddHosts("h", 30, /*dogfood=*/false, "v1");
  ASSERT_TRUE(
      RunUntil([&] { return Running("vbad") == 5; }, absl::Seconds(10)));
  Ingest({Crash("dog-0"), Crash("dog-1"), Crash("dog-2")});
  ASSERT_OK(controller_->Tick());
  ASSERT_EQ(State(bad->id()).state(), config::v1::HALTED);

  EXPECT_THAT(Start("v3", BreakerPlan(), "vbad"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("baseline_release_id: release \"vbad\" "
                                       "is not proven: its rollout"),
                             HasSubstr("is halted"))));
  auto rollouts = controller_->ListRollouts();
  ASSERT_OK(rollouts);
  EXPECT_EQ(rollouts->size(), 1u);
  Round();
  EXPECT_EQ(Running("vbad"), 0);
}

// A release that never completed a rollout is no baseline once another
// release of the content type did.
TEST_P(GateSafetyTest, Case18UnprovenBaselineIsRefusedOnceOneCompleted) {
  CreateReleases({"v1", "v2", "v9-hotfix"});
  Adopt("v1");
  EXPECT_THAT(Start("v2", BreakerPlan(), "v9-hotfix"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("baseline_release_id: release "
                                       "\"v9-hotfix\" never completed a "
                                       "rollout"),
                             HasSubstr("\"v1\""))));
  // The default is the proven one.
  auto r = Start("v2", BreakerPlan());
  ASSERT_OK(r);
  EXPECT_EQ(r->baseline_release_id(), "v1");
  EXPECT_FALSE(r->baseline_vouched());
}

// While nothing of the content type ever completed, a never-rolled-out
// baseline is accepted as vouched for (on record); hosts outside the rollout
// are not moved onto it while it runs; after a halt every host is told it.
TEST_P(GateSafetyTest, Case18VouchedBaselineIsToldOnlyAfterAHalt) {
  CreateReleases({"v1", "v2", "v9-hotfix"});
  auto r = Start("v2", BreakerPlan(), "v9-hotfix");
  ASSERT_OK(r);
  EXPECT_EQ(r->baseline_release_id(), "v9-hotfix");
  EXPECT_TRUE(r->baseline_vouched());
  const std::vector<AuditEntry> audit = Audit(r->id());
  ASSERT_FALSE(audit.empty());
  EXPECT_THAT(audit[0].reason(),
              HasSubstr("baseline v9-hotfix vouched for by ci, not proven by "
                        "a rollout"));

  AddHosts("dog", 5, /*dogfood=*/true, "v1");
  AddHosts("h", 30, /*dogfood=*/false, "v1");
  ASSERT_TRUE(RunUntil([&] { return Running("v2") == 5; }, absl::Seconds(10)));
  for (int i = 0; i < 30; ++i) {
    const TestHost& h = Host(absl::StrCat("h-", i));
    EXPECT_EQ(h.last.release, nullptr) << h.info.host_id;
    EXPECT_FALSE(h.last.unload) << h.info.host_id;
    EXPECT_EQ(h.last.reason, AssignReason::kNotYet) << h.info.host_id;
    EXPECT_EQ(h.running, "v1") << h.info.host_id;
  }
  EXPECT_EQ(Running("v9-hotfix"), 0);

  Ingest({Crash("dog-0"), Crash("dog-1"), Crash("dog-2")});
  ASSERT_OK(controller_->Tick());
  ASSERT_EQ(State(r->id()).state(), config::v1::HALTED);
  AddHosts("new", 2, /*dogfood=*/false, "v1");
  Round();
  for (const TestHost& h : hosts_) {
    ASSERT_NE(h.last.release, nullptr) << h.info.host_id;
    EXPECT_EQ(h.last.release->id(), "v9-hotfix") << h.info.host_id;
    EXPECT_EQ(h.last.reason, AssignReason::kRolledBack) << h.info.host_id;
  }
  EXPECT_EQ(Running("v9-hotfix"), static_cast<int>(hosts_.size()));
}

// ---- Case 19: no manual bypass of a tripped breaker ----------------------

// Crashes are ingested (Ingest returned) and a promote lands before any
// tick: the halt rules run under the promote's lock; the promote is refused
// and the rollout is HALTED, never COMPLETED.
TEST_P(GateSafetyTest, Case19PromoteAfterTrippedBreakerIsRefusedAndHalts) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", BreakerPlan(absl::Seconds(3)), "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  AddHosts("dog", 4, /*dogfood=*/true, "v1");
  AddHosts("h", 6, /*dogfood=*/false, "v1");
  ASSERT_TRUE(RunUntil([&] { return Running("v2") == 4; }, absl::Seconds(10)));
  ASSERT_OK(controller_->Promote(id, "alice", "looks fine"));
  auto late = controller_->Promote(id, "alice", "and the fleet stage");
  ASSERT_OK(late);
  ASSERT_EQ(late->stage(), 2u);  // the late-track stage

  ASSERT_OK(controller_->Ingest(std::vector<TelemetryEvent>{
      Crash("dog-0"), Crash("dog-1"), Crash("dog-2")}));
  EXPECT_THAT(controller_->Promote(id, "alice", "ship to everyone"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("promote refused: the gate's halt "
                                       "rules tripped"),
                             HasSubstr("is now HALTED"))));
  const Rollout st = State(id);
  EXPECT_EQ(st.state(), config::v1::HALTED);
  EXPECT_THAT(st.last_decision().evidence(),
              Contains(EvidenceIs("circuit_breaker", "crash")));
  EXPECT_THAT(st.reason(), HasSubstr("stage dogfood"));
  EXPECT_THAT(Actions(id), Not(Contains("complete")));
  EXPECT_EQ(Actions(id).back(), "halt");
  // Nothing moves it on afterwards.
  EXPECT_THAT(controller_->PromoteToCompletion(id, "alice", "again"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  Round();
  EXPECT_EQ(State(id).state(), config::v1::HALTED);
  EXPECT_EQ(Running("v2"), 0);
}

// The same race with a resume of a paused rollout.
TEST_P(GateSafetyTest, Case19ResumeAfterTrippedBreakerIsRefusedAndHalts) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", BreakerPlan(absl::Seconds(3)), "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  AddHosts("dog", 4, /*dogfood=*/true, "v1");
  ASSERT_TRUE(RunUntil([&] { return Running("v2") == 4; }, absl::Seconds(10)));
  ASSERT_OK(controller_->Pause(id, "alice", "lunch"));
  ASSERT_OK(controller_->Ingest(std::vector<TelemetryEvent>{
      Crash("dog-0"), Crash("dog-1"), Crash("dog-2")}));
  EXPECT_THAT(controller_->Resume(id, "alice", "back"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("resume refused: the gate's halt rules "
                                 "tripped")));
  EXPECT_EQ(State(id).state(), config::v1::HALTED);
}

// PromoteToCompletion (how a baseline is adopted) is refused the same way.
TEST_P(GateSafetyTest, Case19PromoteToCompletionAfterTrippedBreakerHalts) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", BreakerPlan(absl::Seconds(3)), "v1");
  ASSERT_OK(r);
  AddHosts("dog", 4, /*dogfood=*/true, "v1");
  ASSERT_TRUE(RunUntil([&] { return Running("v2") == 4; }, absl::Seconds(10)));
  ASSERT_OK(controller_->Ingest(std::vector<TelemetryEvent>{
      Crash("dog-0"), Crash("dog-1"), Crash("dog-2")}));
  EXPECT_THAT(controller_->PromoteToCompletion(r->id(), "alice", "ship it"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("promote refused")));
  EXPECT_EQ(State(r->id()).state(), config::v1::HALTED);
}

// A completed rollout stays under its halt rules for the plan's
// post_completion_watch: crashes during the watch halt it, and every host is
// told the baseline. A release halted since its completion is no baseline.
TEST_P(GateSafetyTest, Case19CompletedRolloutHaltsDuringItsWatch) {
  CreateReleases({"v1", "v2", "v3"});
  Plan plan = BreakerPlan(absl::Seconds(3));
  plan.mutable_post_completion_watch()->set_seconds(600);
  auto r = Start("v2", plan, "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  AddHosts("dog", 4, /*dogfood=*/true, "v1");
  AddHosts("h", 6, /*dogfood=*/false, "v1");
  ASSERT_TRUE(RunUntil([&] { return Running("v2") == 4; }, absl::Seconds(10)));
  auto done = controller_->PromoteToCompletion(id, "alice", "ship it");
  ASSERT_OK(done);
  ASSERT_EQ(done->state(), config::v1::COMPLETED);
  EXPECT_EQ(FromProto(done->watch_until()), clock_.Now() + absl::Minutes(10));
  RunFor(absl::Seconds(5));
  ASSERT_EQ(State(id).state(), config::v1::COMPLETED);
  EXPECT_EQ(Running("v2"), 10);

  RunFor(absl::Minutes(2));  // within the watch
  Ingest({Crash("dog-0"), Crash("dog-1"), Crash("dog-2")});
  ASSERT_OK(controller_->Tick());
  const Rollout st = State(id);
  EXPECT_EQ(st.state(), config::v1::HALTED);
  EXPECT_THAT(st.reason(), HasSubstr("post-completion watch: HALT"));
  EXPECT_THAT(st.last_decision().evidence(),
              Contains(EvidenceIs("circuit_breaker", "crash")));
  Round();
  for (const TestHost& h : hosts_) {
    ASSERT_NE(h.last.release, nullptr) << h.info.host_id;
    EXPECT_EQ(h.last.release->id(), "v1") << h.info.host_id;
    EXPECT_EQ(h.last.reason, AssignReason::kRolledBack) << h.info.host_id;
  }
  EXPECT_THAT(Start("v3", BreakerPlan(absl::Seconds(3)), "v2"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("release \"v2\" is not proven")));
}

// Once the watch ran its course (recorded as "watch_end"), crashes no longer
// halt the completed rollout.
TEST_P(GateSafetyTest, Case19NoHaltAfterTheWatchEnded) {
  CreateReleases({"v1", "v2"});
  Plan plan = BreakerPlan(absl::Seconds(3));
  plan.mutable_post_completion_watch()->set_seconds(60);
  auto r = Start("v2", plan, "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  AddHosts("dog", 4, /*dogfood=*/true, "v1");
  ASSERT_TRUE(RunUntil([&] { return Running("v2") == 4; }, absl::Seconds(10)));
  ASSERT_OK(controller_->PromoteToCompletion(id, "alice", "ship it"));
  RunFor(absl::Seconds(61));
  EXPECT_EQ(Actions(id).back(), "watch_end");
  EXPECT_THAT(Audit(id).back().reason(),
              HasSubstr("post-completion watch of 1m ended with no halt rule "
                        "tripped"));

  Ingest({Crash("dog-0"), Crash("dog-1"), Crash("dog-2")});
  ASSERT_OK(controller_->Tick());
  RunFor(absl::Seconds(2));
  EXPECT_EQ(State(id).state(), config::v1::COMPLETED);
  const Assignment a = controller_->Assign(Host("dog-0").info, kType);
  ASSERT_NE(a.release, nullptr);
  EXPECT_EQ(a.release->id(), "v2");
  EXPECT_EQ(a.reason, AssignReason::kCompleted);
}

// A later rollout of the content type ends the watch, on record; the
// completed release is its (proven) baseline and is not halted afterwards.
TEST_P(GateSafetyTest, Case19LaterRolloutEndsTheWatchOnRecord) {
  CreateReleases({"v1", "v2", "v3"});
  auto r = Start("v2", BreakerPlan(absl::Seconds(3)), "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  AddHosts("dog", 4, /*dogfood=*/true, "v1");
  ASSERT_TRUE(RunUntil([&] { return Running("v2") == 4; }, absl::Seconds(10)));
  ASSERT_OK(controller_->PromoteToCompletion(id, "alice", "ship it"));
  RunFor(absl::Seconds(5));

  auto next = Start("v3", BreakerPlan(absl::Seconds(3)));
  ASSERT_OK(next);
  EXPECT_EQ(next->baseline_release_id(), "v2");
  EXPECT_FALSE(next->baseline_vouched());
  const std::vector<AuditEntry> audit = Audit(id);
  ASSERT_FALSE(audit.empty());
  EXPECT_EQ(audit.back().action(), "watch_end");
  EXPECT_THAT(audit.back().reason(),
              HasSubstr(absl::StrCat("post-completion watch ended early: "
                                     "rollout ",
                                     next->id(), " of release v3 starts")));

  Ingest({Crash("dog-0"), Crash("dog-1"), Crash("dog-2")});
  ASSERT_OK(controller_->Tick());
  EXPECT_EQ(State(id).state(), config::v1::COMPLETED);
}

// ---- Case 20: chronic crashers -------------------------------------------

// Hosts that crashed (and rebooted uncleanly) while in control and keep
// doing so once exposed carry that history as pre_affected: they count
// neither for nor against the release, and a good release completes with
// them in its paced stage.
TEST_P(GateSafetyTest, Case20ChronicCrashersInAPacedStageDoNotHalt) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", ParsePlan(kChronicPlan), "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  // The chronic crashers poll first, so they take the paced stage's first
  // grants.
  AddHosts("chronic", 6, /*dogfood=*/false, "v1");
  AddHosts("dog", 5, /*dogfood=*/true, "v1");
  AddHosts("h", 34, /*dogfood=*/false, "v1");
  behavior_ = [&](const TestHost& h, std::vector<TelemetryEvent>* batch) {
    if (h.info.host_id.rfind("chronic-", 0) == 0) {
      batch->push_back(Crash(h.info.host_id));
      batch->push_back(UncleanBoot(h.info.host_id));
    }
  };
  ASSERT_TRUE(RunUntil([&] { return State(id).stage() == 1; },
                       absl::Minutes(10), absl::Seconds(5)))
      << State(id).last_decision().summary();
  ASSERT_TRUE(RunUntil([&] { return Running("v2") >= 6 + 5 + 5; },
                       absl::Minutes(5), absl::Seconds(5)));
  EXPECT_EQ(Host("chronic-0").running, "v2");
  EXPECT_EQ(Host("chronic-5").running, "v2");
  RunUntil([&] { return !IsRunning(id); }, absl::Minutes(30), absl::Seconds(5));

  const Rollout st = State(id);
  EXPECT_EQ(st.state(), config::v1::COMPLETED) << st.reason();
  EXPECT_EQ(PreAffected(id, 1, "crash"), 6u);
  EXPECT_EQ(PreAffected(id, 1, "unclean_reboot"), 6u);
  EXPECT_EQ(Affected(id, 1, "crash"), 0u);
  EXPECT_EQ(Affected(id, 1, "unclean_reboot"), 0u);
}

// The sanity twin: the same hosts crashing only on the release halt in the
// paced stage.
TEST_P(GateSafetyTest, Case20HostsThatCrashOnlyOnTheReleaseHalt) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", ParsePlan(kChronicPlan), "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  AddHosts("crasher", 6, /*dogfood=*/false, "v1");
  AddHosts("dog", 5, /*dogfood=*/true, "v1");
  AddHosts("h", 34, /*dogfood=*/false, "v1");
  behavior_ = [&](const TestHost& h, std::vector<TelemetryEvent>* batch) {
    if (h.info.host_id.rfind("crasher-", 0) == 0 && h.running == "v2") {
      batch->push_back(Crash(h.info.host_id));
      batch->push_back(UncleanBoot(h.info.host_id));
    }
  };
  RunUntil([&] { return !IsRunning(id); }, absl::Minutes(30), absl::Seconds(5));
  const Rollout st = State(id);
  EXPECT_EQ(st.state(), config::v1::HALTED);
  EXPECT_EQ(st.stage(), 1u);
  EXPECT_THAT(st.last_decision().evidence(),
              Contains(EvidenceIs("circuit_breaker", "crash")));
}

// A chronic crasher that loads the release at a check-in after one of its
// crashes (applying, applied) and crashes again before its first heartbeat
// on the release: its boot and check-ins look like boot-loop attempts.
// Hosts that crashed whatever they ran are no evidence against the release
// (case 20), so 3 of them must not halt it: a host with crashes or unclean
// reboots before its exposure accumulates no boot-loop attempts.
TEST_P(GateSafetyTest, Case20ChronicCrasherRebootingBeforeItsFirstHeartbeat) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", ParsePlan(kChronicPlan), "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  AddHosts("chronic", 3, /*dogfood=*/false, "v1");
  AddHosts("dog", 5, /*dogfood=*/true, "v1");
  AddHosts("h", 30, /*dogfood=*/false, "v1");
  behavior_ = [&](const TestHost& h, std::vector<TelemetryEvent>* batch) {
    if (h.info.host_id.rfind("chronic-", 0) == 0) {
      batch->push_back(Crash(h.info.host_id));
      batch->push_back(UncleanBoot(h.info.host_id));
    }
  };
  ASSERT_TRUE(RunUntil([&] { return State(id).stage() == 1; },
                       absl::Minutes(10), absl::Seconds(5)));
  // From here on the chronic crashers are driven by hand.
  const std::vector<TestHost> chronic(hosts_.begin(), hosts_.begin() + 3);
  hosts_.erase(hosts_.begin(), hosts_.begin() + 3);
  for (const TestHost& h : chronic) {
    // Boots after a crash, checks in, is granted the release, loads it.
    Ingest({UncleanBoot(h.info.host_id)});
    const Assignment a = controller_->Assign(h.info, kType);
    ASSERT_NE(a.release, nullptr);
    ASSERT_EQ(a.release->id(), "v2");
    Ingest({Event(h.info.host_id, EventType::kApplying, "v2"),
            Event(h.info.host_id, EventType::kApplied, "v2")});
  }
  clock_.Advance(absl::Seconds(20));
  for (const TestHost& h : chronic) {
    // Crashes again before its first heartbeat, boots, checks in.
    Ingest({Crash(h.info.host_id), UncleanBoot(h.info.host_id)});
    controller_->Assign(h.info, kType);
  }
  clock_.Advance(absl::Seconds(20));
  for (const TestHost& h : chronic) {
    // Its regular poll: a check-in, then a heartbeat on the release.
    controller_->Assign(h.info, kType);
    Ingest({Event(h.info.host_id, EventType::kHeartbeat, "v2")});
  }
  ASSERT_OK(controller_->Tick());
  const Rollout st = State(id);
  EXPECT_EQ(st.state(), config::v1::RUNNING) << st.reason();
  EXPECT_EQ(Affected(id, 1, "apply_stuck"), 0u);
  EXPECT_EQ(PreAffected(id, 1, "crash"), 3u);
}

// The simulator's measure of case 20: a release with no effect on 10,000
// hosts with 1 % chronic crashers (the detection plan, 3 seeds, ~1.3 s) is
// never halted.
TEST(GateSafetySimTest, Case20NoFalseHaltsWithOnePercentChronicCrashers) {
  Plan plan;
  ASSERT_OK(LoadMessageFile(
      std::string(RINGFENCE_SOURCE_DIR) + "/bench/plans/detection.textproto",
      &plan));
  Scenario s;
  ASSERT_OK(ParseTextOrJson(R"pb(
                              name: "good-update-chronic-1pct"
                              fleet { hosts: 10000 dogfood_hosts: 50 }
                              behavior {
                                heartbeat_interval { seconds: 60 }
                                offline_fraction: 0.02
                                mean_offline_time { seconds: 7200 }
                                crash_per_host_hour: 0.002
                                chronic_crashers { fraction: 0.01 }
                              }
                              max_duration { seconds: 86400 }
                            )pb",
                            &s));
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.horizon = absl::ZeroDuration();  // no harm to count after the end
    auto run = Simulate(s, plan, o);
    ASSERT_OK(run);
    EXPECT_FALSE(run->harmful);
    EXPECT_FALSE(run->halted) << "seed " << seed << ": " << run->halt_reason;
    EXPECT_FALSE(run->false_halt);
  }
}

// ---- Case 21: boot loops that only check in -------------------------------

// Canaries that boot-loop on the release check in (Assign) at every boot and
// never send telemetry: their check-ins are boot-loop attempts, not life;
// at boot_loop_attempts (3) each is apply_stuck and the breaker halts in
// dogfood within the first handful of hosts.
TEST_P(GateSafetyTest, Case21CheckInOnlyBootLoopHaltsInDogfood) {
  CreateReleases({"v1", "v2"});
  boot_loop_release_ = "v2";
  auto r = Start("v2", ParsePlan(kCheckInPlan), "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  AddHosts("dog", 5, /*dogfood=*/true, "v1");
  AddHosts("h", 45, /*dogfood=*/false, "v1");
  const absl::Time start = clock_.Now();
  RunUntil([&] { return !IsRunning(id); }, absl::Seconds(90));

  const RolloutStatus st = Status(id);
  EXPECT_EQ(st.rollout.state(), config::v1::HALTED);
  EXPECT_EQ(st.rollout.stage(), 0u);
  EXPECT_THAT(st.rollout.last_decision().evidence(),
              Contains(EvidenceIs("circuit_breaker", "apply_stuck")));
  EXPECT_LE(st.telemetry.treatment_hosts, 5u);
  EXPECT_LE(clock_.Now() - start, absl::Seconds(4));  // before any silence
  EXPECT_FALSE(EverPromoted(id));
  // Told the baseline, the loopers recover.
  Round();
  EXPECT_EQ(Running("v1"), 50);
}

// Check-ins keep no boot-looping host from going silent (the halt rules in
// shadow mode, so that the apply_stuck halt does not end the rollout first).
TEST_P(GateSafetyTest, Case21CheckInsNeverKeepAHostFromGoingSilent) {
  options_.enforce_halts = false;
  NewController();
  CreateReleases({"v1", "v2"});
  boot_loop_release_ = "v2";
  Plan plan = ParsePlan(kCheckInPlan);
  plan.mutable_stages(0)->mutable_bake_time()->set_seconds(600);
  auto r = Start("v2", plan, "v1");
  ASSERT_OK(r);
  const std::string id = r->id();
  AddHosts("dog", 5, /*dogfood=*/true, "v1");
  AddHosts("h", 45, /*dogfood=*/false, "v1");
  RunFor(absl::Seconds(10));

  EXPECT_EQ(Running("v2"), 5);
  for (int i = 0; i < 5; ++i) {
    const TestHost& h = Host(absl::StrCat("dog-", i));
    EXPECT_TRUE(h.looping);
    EXPECT_EQ(h.last.reason, AssignReason::kExposed);  // checked in just now
  }
  EXPECT_EQ(Affected(id, 0, "silent"), 5u);
  EXPECT_EQ(Affected(id, 0, "apply_stuck"), 5u);
  const TrackerSnapshot t = Status(id).telemetry;
  EXPECT_EQ(t.signal_counts[SignalIndex(t, "silent")].control_affected, 0u);
}

// ---- K9: signal names ----------------------------------------------------

// A signal event whose name no rule could ever match is refused with the
// whole batch.
TEST_P(GateSafetyTest, K9BadSignalNameIsRefusedAndNothingApplied) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", ParsePlan(kVendorSignalPlan), "v1");
  ASSERT_OK(r);
  TelemetryEvent bad = Event("dog-2", EventType::kSignal);
  bad.signal = "Bad-Name";
  EXPECT_THAT(
      controller_->Ingest(std::vector<TelemetryEvent>{
          Event("dog-0", EventType::kHeartbeat, "v1"), Crash("dog-1"), bad}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("events[2].signal: a signal event's name must match "
                         "[a-z0-9_]{1,64}")));
  const RolloutStatus st = Status(r->id());
  EXPECT_EQ(st.telemetry.tracked_hosts, 0u);
  EXPECT_EQ(st.telemetry.last_ingest, absl::InfinitePast());
  EXPECT_TRUE(st.telemetry.unwatched_signals.empty());
}

// A valid name that no rule watches is counted, visibly.
TEST_P(GateSafetyTest, K9UnwatchedSignalIsCounted) {
  CreateReleases({"v1", "v2"});
  auto r = Start("v2", ParsePlan(kVendorSignalPlan), "v1");
  ASSERT_OK(r);
  TelemetryEvent unwatched = Event("h-0", EventType::kSignal);
  unwatched.signal = "disk_smart_warning";
  TelemetryEvent watched = Event("h-1", EventType::kSignal);
  watched.signal = "latency_regression";
  // Checked in: of the rollout's population (h-0 did not, and its signal is
  // listed all the same: a name no rule watches is listed whoever sent it).
  for (const char* id : {"h-1", "h-2"}) {
    controller_->Assign(MakeHost(id, /*dogfood=*/false), kType);
  }
  ASSERT_OK(controller_->Ingest(
      std::vector<TelemetryEvent>{unwatched, watched, unwatched,
                                  Event("h-2", EventType::kHeartbeat, "v1")}));
  const RolloutStatus st = Status(r->id());
  EXPECT_THAT(st.telemetry.unwatched_signals,
              ::testing::ElementsAre(
                  std::pair<std::string, uint64_t>("disk_smart_warning", 2)));
  EXPECT_EQ(st.telemetry
                .signal_counts[SignalIndex(st.telemetry, "latency_regression")]
                .control_affected,
            1u);
}

INSTANTIATE_TEST_SUITE_P(
    Stores, GateSafetyTest,
    ::testing::ValuesIn(::ringfence::testing::AllStoreFactories()),
    [](const ::testing::TestParamInfo<StoreFactory>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace ringfence
