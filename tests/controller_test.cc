// Controller tests: whole rollouts with a fake clock and an emulated fleet,
// manual controls, emergency stop, fail-closed store errors and restarts.
// Parameterized over every Store implementation.
#include "ringfence/controller.h"

#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "faulty_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/clock.h"
#include "ringfence/fake_fleet.h"
#include "ringfence/hash.h"
#include "status_matchers.h"
#include "store_factory.h"
#include "test_release.h"

namespace ringfence {
namespace {

using ::ringfence::testing::FaultyStore;
using ::ringfence::testing::StatusIs;
using ::ringfence::testing::StoreFactory;
using ::testing::HasSubstr;

constexpr char kType[] = "channel-file/291";

constexpr char kPlan[] = R"pb(
  name: "test"
  policy {
    silence_timeout { seconds: 300 }
    apply_timeout { seconds: 300 }
    min_exposed_hosts: 3
    # A small fleet with a high base crash rate (FakeFleet at up to 0.02
    # crashes per host-hour): after the canary, the crash breakers trip at
    # 10 hosts, not 3.
    signals { signal: "crash" max_affected_hosts: 10 }
    signals { signal: "unclean_reboot" max_affected_hosts: 10 }
  }
  stages {
    name: "canary"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 600 }
    policy {
      silence_timeout { seconds: 300 }
      apply_timeout { seconds: 300 }
      min_exposed_hosts: 3
      signals {
        signal: "crash"
        max_affected_hosts: 3
        compare_with_control: true
        margin: 0.2
      }
      signals {
        signal: "unclean_reboot"
        max_affected_hosts: 3
        compare_with_control: true
        margin: 0.2
      }
      signals {
        signal: "silent"
        max_affected_hosts: 3
        compare_with_control: true
        margin: 0.2
      }
      signals { signal: "apply_stuck" max_affected_hosts: 3 }
    }
  }
  stages {
    name: "half"
    audience { percent: 50 }
    bake_time { seconds: 1200 }
  }
  stages {
    name: "all"
    audience { percent: 100 }
    bake_time { seconds: 1200 }
  }
  late_track { bake_time { seconds: 600 } }
)pb";

Release MakeRelease(const std::string& id, char digest) {
  return ::ringfence::testing::TestRelease(id, kType, digest);
}

class ControllerTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    dir_ =
        (std::filesystem::path(::testing::TempDir()) /
         absl::StrCat(
             "controller_test_", getpid(), "_", GetParam().name, "_",
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
            .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(ParseTextOrJson(kPlan, &plan_).ok());
    for (auto [name, track] : {std::pair{"tenant-3", config::v1::TRACK_PINNED},
                               std::pair{"tenant-4", config::v1::TRACK_LATE}}) {
      Tenant* t = options_.fleet.add_tenants();
      t->set_name(name);
      t->set_track(track);
    }
    base_ = GetParam().open(dir_);
    ASSERT_NE(base_, nullptr)
        << "cannot open the " << GetParam().name << " store";
    faulty_ = std::make_unique<FaultyStore>(base_.get());
    NewController();
    ASSERT_OK(controller_->CreateRelease(MakeRelease("good", 'a'), "ci"));
    ASSERT_OK(controller_->CreateRelease(MakeRelease("next", 'b'), "ci"));
    ASSERT_OK(controller_->CreateRelease(MakeRelease("bad", 'c'), "ci"));
  }

  void TearDown() override {
    fleet_.reset();
    controller_.reset();
    faulty_.reset();
    base_.reset();
    std::filesystem::remove_all(dir_);
  }

  void NewController() {
    auto c = Controller::Create(faulty_.get(), &clock_, options_);
    ASSERT_OK(c);
    controller_ = std::move(*c);
  }

  // Simulates a process restart: a new controller over the same data.
  void Restart() {
    fleet_.reset();
    controller_.reset();
    if (GetParam().persistent) {
      faulty_.reset();
      base_.reset();
      base_ = GetParam().open(dir_);
      ASSERT_NE(base_, nullptr)
          << "cannot open the " << GetParam().name << " store";
      faulty_ = std::make_unique<FaultyStore>(base_.get());
    }
    NewController();
  }

  // The emulated fleet: 400 hosts, 20 dogfood; tenants 3 (pinned) and 4
  // (late) hold 8 hosts each.
  FakeFleet& Fleet(double crash_per_host_hour = 0.002) {
    if (fleet_ == nullptr) {
      FakeFleetOptions o;
      o.hosts = 400;
      o.tenants = 50;
      o.dogfood_hosts = 20;
      o.content_type = kType;
      o.crash_per_host_hour = crash_per_host_hour;
      fleet_ = std::make_unique<FakeFleet>(controller_.get(), &clock_, o);
      fleet_->SetBehavior("bad", {.boot_loop = true});
    }
    return *fleet_;
  }

  absl::StatusOr<Rollout> Start(const std::string& release,
                                const std::string& id = "") {
    StartRolloutRequest req;
    req.rollout_id = id;
    req.release_id = release;
    req.plan = plan_;
    req.allow_no_baseline = true;
    req.actor = "ci";
    req.reason = "test rollout";
    return controller_->StartRollout(req);
  }

  // Steps the fleet (10 s at a time) for `d` or until the rollout is no
  // longer active.
  Rollout RunFor(const std::string& id, absl::Duration d) {
    for (absl::Duration t; t < d; t += absl::Seconds(10)) {
      EXPECT_OK(Fleet().Step(absl::Seconds(10)));
      if (IsTerminal(State(id).state())) break;
    }
    return State(id);
  }

  void Steps(absl::Duration d) {
    for (absl::Duration t; t < d; t += absl::Seconds(10)) {
      EXPECT_OK(Fleet().Step(absl::Seconds(10)));
    }
  }

  Rollout State(const std::string& id) {
    auto s = controller_->GetRollout(id);
    EXPECT_OK(s);
    return s.ok() ? s->rollout : Rollout();
  }

  uint64_t Exposed(const std::string& id) {
    auto s = controller_->GetRollout(id);
    return s.ok() ? s->telemetry.treatment_hosts : 0;
  }

  HostInfo HostAt(int i) {
    HostInfo h;
    h.host_id = Fleet().host_id(i);
    h.tenant = absl::StrCat("tenant-", i % 50);
    if (i < 20) h.labels.push_back("ring:dogfood");
    h.agent_version = "7.11.0";
    h.platform = "windows";
    return h;
  }

  // Completes a rollout of "good" so it becomes the last known good release.
  void CompleteGood() {
    auto r = Start("good");
    ASSERT_OK(r);
    const Rollout done = RunFor(r->id(), absl::Hours(6));
    EXPECT_EQ(done.state(), config::v1::COMPLETED) << done.reason();
  }

  std::vector<AuditEntry> Audit() {
    auto a = faulty_->ReadAudit(0, 100000);
    EXPECT_OK(a);
    return a.ok() ? *a : std::vector<AuditEntry>();
  }

  std::string dir_;
  FakeClock clock_;
  Plan plan_;
  ControllerOptions options_;
  StorePtr base_;
  std::unique_ptr<FaultyStore> faulty_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<FakeFleet> fleet_;
};

TEST_P(ControllerTest, GoodReleaseCompletes) {
  auto r = Start("good");
  ASSERT_OK(r);
  EXPECT_EQ(r->state(), config::v1::RUNNING);
  const Rollout done = RunFor(r->id(), absl::Hours(6));
  EXPECT_EQ(done.state(), config::v1::COMPLETED)
      << done.last_decision().summary();
  EXPECT_FALSE(done.overridden());
  // Everyone but the pinned tenant runs it after a last poll.
  Steps(absl::Minutes(2));
  EXPECT_EQ(Fleet().Running("good"), 400 - 8);
  auto decisions = controller_->ListDecisions(r->id());
  ASSERT_OK(decisions);
  int promotes = 0;
  for (const Decision& d : *decisions)
    promotes += d.verdict() == config::v1::PROMOTE;
  EXPECT_EQ(promotes, 4);  // canary, half, all, late-track
  std::vector<std::string> actions;
  for (const AuditEntry& a : Audit()) {
    if (a.rollout_id() == r->id()) actions.push_back(a.action());
  }
  EXPECT_THAT(actions,
              ::testing::ElementsAre("start", "gate_promote", "gate_promote",
                                     "gate_promote", "complete"));
}

TEST_P(ControllerTest, BootLoopingReleaseHaltsInFirstStageAndReverts) {
  CompleteGood();
  auto r = Start("bad");
  ASSERT_OK(r);
  EXPECT_EQ(r->baseline_release_id(), "good");
  const Rollout halted = RunFor(r->id(), absl::Hours(2));
  EXPECT_EQ(halted.state(), config::v1::HALTED);
  EXPECT_EQ(halted.stage(), 0u);
  EXPECT_LE(Exposed(r->id()), 10u);
  EXPECT_LE(Fleet().Dead(), 10);
  EXPECT_GT(Fleet().Dead(), 0);
  EXPECT_THAT(halted.reason(), HasSubstr("silent"));
  // Every host is assigned the last known good release again.
  for (int i = 0; i < 400; i += 7) {
    const Assignment a = controller_->Assign(HostAt(i), kType);
    ASSERT_NE(a.release, nullptr);
    EXPECT_EQ(a.release->id(), "good");
    EXPECT_EQ(a.reason, i % 50 == 3 ? AssignReason::kRolledBack
                                    : AssignReason::kRolledBack);
  }
  Steps(absl::Minutes(2));
  EXPECT_EQ(Fleet().Running("good"), 400 - Fleet().Dead());
}

TEST_P(ControllerTest, TenfoldCrashRateHalts) {
  Fleet(/*crash_per_host_hour=*/0.02);
  CompleteGood();
  Fleet().SetBehavior("next", {.crash_multiplier = 10});
  auto r = Start("next");
  ASSERT_OK(r);
  const Rollout done = RunFor(r->id(), absl::Hours(8));
  EXPECT_EQ(done.state(), config::v1::HALTED);
  ASSERT_GT(done.last_decision().evidence_size(), 0);
  const Evidence& e = done.last_decision().evidence(0);
  EXPECT_THAT(e.signal(), ::testing::AnyOf("crash", "unclean_reboot"));
  EXPECT_THAT(e.rule(), ::testing::AnyOf("circuit_breaker",
                                         "control_comparison", "ceiling"));
}

TEST_P(ControllerTest, PauseFreezesExposureButStillHalts) {
  auto r = Start("good");
  ASSERT_OK(r);
  RunFor(r->id(), absl::Minutes(3));
  ASSERT_OK(controller_->Pause(r->id(), "alice", "investigating a ticket"));
  const uint64_t exposed = Exposed(r->id());
  EXPECT_GT(exposed, 0u);
  // Long past the bake time: no promotion, no new exposure.
  Rollout paused = RunFor(r->id(), absl::Hours(1));
  EXPECT_EQ(paused.state(), config::v1::PAUSED);
  EXPECT_EQ(paused.stage(), 0u);
  EXPECT_EQ(Exposed(r->id()), exposed);
  EXPECT_EQ(paused.last_decision().evidence(0).rule(), "paused");
  // Bad telemetry while paused still halts.
  std::vector<TelemetryEvent> crashes;
  for (int i = 0; i < 20 && crashes.size() < 3; ++i) {
    if (controller_->Assign(HostAt(i), kType).reason !=
        AssignReason::kExposed) {
      continue;
    }
    TelemetryEvent e;
    e.host_id = HostAt(i).host_id;
    e.type = EventType::kCrash;
    crashes.push_back(e);
  }
  ASSERT_EQ(crashes.size(), 3u);
  ASSERT_OK(controller_->Ingest(crashes));
  ASSERT_OK(controller_->Tick());
  const Rollout halted = State(r->id());
  EXPECT_EQ(halted.state(), config::v1::HALTED);
  EXPECT_THAT(halted.reason(), HasSubstr("circuit breaker"));
}

TEST_P(ControllerTest, ResumeContinuesToCompletion) {
  auto r = Start("good");
  ASSERT_OK(r);
  RunFor(r->id(), absl::Minutes(2));
  ASSERT_OK(controller_->Pause(r->id(), "alice", "lunch"));
  EXPECT_THAT(controller_->Pause(r->id(), "alice", "again"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("it is paused (pause needs running)")));
  RunFor(r->id(), absl::Minutes(30));
  ASSERT_OK(controller_->Resume(r->id(), "alice", "back"));
  EXPECT_EQ(RunFor(r->id(), absl::Hours(6)).state(), config::v1::COMPLETED);
}

TEST_P(ControllerTest, AbortRevertsAndIsFinal) {
  CompleteGood();
  auto r = Start("next");
  ASSERT_OK(r);
  RunFor(r->id(), absl::Minutes(15));
  ASSERT_GT(Exposed(r->id()), 0u);
  auto aborted = controller_->Abort(r->id(), "bob", "customer escalation");
  ASSERT_OK(aborted);
  EXPECT_EQ(aborted->state(), config::v1::ABORTED);
  EXPECT_THAT(aborted->reason(),
              HasSubstr("aborted by bob: customer escalation"));
  const Assignment a = controller_->Assign(HostAt(0), kType);
  ASSERT_NE(a.release, nullptr);
  EXPECT_EQ(a.release->id(), "good");
  EXPECT_EQ(a.reason, AssignReason::kRolledBack);
  EXPECT_THAT(controller_->Abort(r->id(), "bob", "again"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("it is aborted")));
  EXPECT_THAT(controller_->Resume(r->id(), "bob", "oops"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("cannot resume")));
}

TEST_P(ControllerTest, PromoteIsARecordedOverride) {
  auto r = Start("good");
  ASSERT_OK(r);
  EXPECT_THAT(controller_->Promote(r->id(), "carol", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("reason: must not be empty")));
  EXPECT_THAT(controller_->Promote(r->id(), "", "why"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("actor: must not be empty")));
  EXPECT_THAT(controller_->Promote("nope", "carol", "why"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"nope\"")));
  auto p = controller_->Promote(r->id(), "carol", "canary hosts are offline");
  ASSERT_OK(p);
  EXPECT_EQ(p->stage(), 1u);
  EXPECT_TRUE(p->overridden());
  const std::vector<AuditEntry> audit = Audit();
  ASSERT_FALSE(audit.empty());
  const AuditEntry& last = audit.back();
  EXPECT_EQ(last.action(), "promote");
  EXPECT_EQ(last.actor(), "carol");
  EXPECT_EQ(last.reason(), "canary hosts are offline");
  EXPECT_EQ(last.from_stage(), 0u);
  EXPECT_EQ(last.to_stage(), 1u);
  EXPECT_TRUE(last.has_at());
}

TEST_P(ControllerTest, EmergencyStopHaltsAndBlocksNewRollouts) {
  CompleteGood();
  auto r = Start("next");
  ASSERT_OK(r);
  RunFor(r->id(), absl::Minutes(15));
  ASSERT_OK(controller_->EmergencyStop(kType, "dave", "bad channel file"));
  EXPECT_EQ(State(r->id()).state(), config::v1::HALTED);
  const Assignment a = controller_->Assign(HostAt(0), kType);
  ASSERT_NE(a.release, nullptr);
  EXPECT_EQ(a.release->id(), "good");
  EXPECT_EQ(a.reason, AssignReason::kEmergencyStop);
  EXPECT_THAT(Start("bad"), StatusIs(absl::StatusCode::kFailedPrecondition,
                                     HasSubstr("under emergency stop")));
  EXPECT_THAT(controller_->ClearEmergencyStop("other/type", "dave", "x"),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(controller_->ClearEmergencyStop(kType, "dave", "fixed"));
  EXPECT_OK(Start("bad"));
}

TEST_P(ControllerTest, StartRolloutRejectsBadRequestsAndChangesNothing) {
  Plan bad = plan_;
  bad.mutable_stages(1)->mutable_bake_time()->set_seconds(0);
  StartRolloutRequest req;
  req.release_id = "good";
  req.plan = bad;
  req.actor = "ci";
  req.reason = "r";
  EXPECT_THAT(controller_->StartRollout(req),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("plan.stages[1].bake_time: must be > 0")));
  req.plan = plan_;
  req.release_id = "missing";
  EXPECT_THAT(controller_->StartRollout(req),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("release_id: release \"missing\" not found")));
  req.release_id = "good";
  req.reason = "";
  EXPECT_THAT(controller_->StartRollout(req),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("reason: must not be empty")));
  req.reason = "r";
  req.baseline_release_id = "good";
  EXPECT_THAT(controller_->StartRollout(req),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("baseline_release_id: must differ")));
  auto rollouts = controller_->ListRollouts();
  ASSERT_OK(rollouts);
  EXPECT_TRUE(rollouts->empty());
  ASSERT_OK(Start("good", "first"));
  EXPECT_THAT(Start("next"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("already has an active rollout \"first\"")));
  EXPECT_THAT(Start("good", "first"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_P(ControllerTest, InvalidTelemetryBatchAppliesNothing) {
  auto r = Start("good");
  ASSERT_OK(r);
  std::vector<TelemetryEvent> batch(2);
  batch[0].host_id = "h-1";
  batch[0].type = EventType::kHeartbeat;
  batch[1].host_id = "h-2";
  batch[1].type = EventType::kApplied;  // missing release_id
  EXPECT_THAT(controller_->Ingest(batch),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("events[1].release_id: must not be empty")));
  const std::vector<TelemetryEventView> views = {ViewOf(batch[0]),
                                                 ViewOf(batch[1])};
  EXPECT_THAT(controller_->Ingest(views),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("events[1].release_id: must not be empty")));
  auto s = controller_->GetRollout(r->id());
  ASSERT_OK(s);
  EXPECT_EQ(s->telemetry.tracked_hosts, 0u);
  EXPECT_EQ(s->telemetry.last_ingest, absl::InfinitePast());
}

TEST_P(ControllerTest, SlowStartExposesOnlyAHandfulBeforeHealth) {
  // One stage for everyone, slow start of 5 hosts doubling per healthy host.
  plan_ = Plan();
  ASSERT_OK(ParseTextOrJson(R"pb(
                              stages {
                                name: "all"
                                audience { percent: 100 }
                                bake_time { seconds: 3600 }
                                pacing {
                                  initial_hosts: 5
                                  healthy_after { seconds: 120 }
                                }
                              })pb",
                            &plan_));
  auto r = Start("good");
  ASSERT_OK(r);
  RunFor(r->id(), absl::Seconds(100));  // every host polled at least once
  auto s = controller_->GetRollout(r->id());
  ASSERT_OK(s);
  EXPECT_EQ(s->telemetry.cohorts[0].exposed, 5u);
  EXPECT_EQ(s->stage_exposure_budget, 5u);
  int waiting = 0;
  for (int i = 0; i < 400; ++i) {
    waiting += controller_->Assign(HostAt(i), kType).reason ==
               AssignReason::kWaitingForPacing;
  }
  EXPECT_GE(waiting, 400 - 5 - 8 - 8);
  // Once the first hosts prove healthy, exposure grows.
  RunFor(r->id(), absl::Minutes(5));
  s = controller_->GetRollout(r->id());
  ASSERT_OK(s);
  EXPECT_GT(s->telemetry.cohorts[0].exposed, 5u);
  EXPECT_LE(s->telemetry.cohorts[0].exposed,
            5 + s->telemetry.cohorts[0].healthy);
}

TEST_P(ControllerTest, StoreFailureFailsClosed) {
  auto r = Start("good");
  ASSERT_OK(r);
  RunFor(r->id(), absl::Minutes(1));
  const uint64_t exposed = Exposed(r->id());
  const int running = Fleet().Running("good");
  faulty_->FailWrites(absl::UnavailableError("disk on fire"));
  // Hosts keep polling: nobody new gets the release.
  for (int i = 0; i < 12; ++i) {
    (void)Fleet().Step(absl::Seconds(10));
  }
  EXPECT_FALSE(controller_->store_healthy());
  EXPECT_EQ(Exposed(r->id()), exposed);
  EXPECT_EQ(Fleet().Running("good"), running);
  int unavailable = 0, kept = 0;
  for (int i = 0; i < 20; ++i) {
    const AssignReason reason = controller_->Assign(HostAt(i), kType).reason;
    unavailable += reason == AssignReason::kStoreUnavailable;
    kept += reason == AssignReason::kExposed;
    EXPECT_NE(reason, AssignReason::kWaitingForPacing);
  }
  EXPECT_EQ(kept, static_cast<int>(exposed));
  EXPECT_EQ(unavailable + kept, 20 - 2);  // hosts 3 and 4: pinned, late
  // A transition cannot be committed: the error surfaces, nothing changes.
  EXPECT_THAT(
      controller_->Pause(r->id(), "alice", "x"),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("disk on fire")));
  EXPECT_EQ(State(r->id()).state(), config::v1::RUNNING);
  faulty_->Heal();
  ASSERT_OK(controller_->Pause(r->id(), "alice", "x"));
  EXPECT_TRUE(controller_->store_healthy());
}

TEST_P(ControllerTest, HealthRecoversWithoutActiveRollouts) {
  // Nothing to evaluate or checkpoint: only the probe finds out.
  faulty_->FailWrites(absl::UnavailableError("disk on fire"));
  Release r;
  r.set_id("other");
  r.set_content_type("channel-file/999");
  r.set_digest_sha256(std::string(64, 'b'));
  r.set_size_bytes(1);
  EXPECT_THAT(controller_->CreateRelease(r, "ci"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(controller_->store_healthy());
  EXPECT_THAT(controller_->Tick(), StatusIs(absl::StatusCode::kUnavailable,
                                            HasSubstr("disk on fire")));
  EXPECT_FALSE(controller_->store_healthy());
  faulty_->Heal();
  EXPECT_OK(controller_->Tick());
  EXPECT_TRUE(controller_->store_healthy());
}

TEST_P(ControllerTest, RestartKeepsStateAndWaitsForFreshTelemetry) {
  auto r = Start("good");
  ASSERT_OK(r);
  Rollout before = RunFor(r->id(), absl::Minutes(12));
  ASSERT_EQ(before.stage(), 1u);
  const uint64_t exposed = Exposed(r->id());
  Restart();
  const Rollout after = State(r->id());
  EXPECT_EQ(after.stage(), 1u);
  EXPECT_EQ(after.state(), config::v1::RUNNING);
  EXPECT_EQ(after.version(), before.version());
  EXPECT_EQ(Exposed(r->id()), exposed);  // exposures restored
  // Right after the restart there is no telemetry: HOLD, never PROMOTE.
  clock_.Advance(absl::Hours(1));
  auto d = controller_->Evaluate(r->id());
  ASSERT_OK(d);
  EXPECT_EQ(d->verdict(), config::v1::HOLD);
  EXPECT_EQ(d->evidence(0).rule(), "freshness");
  EXPECT_EQ(RunFor(r->id(), absl::Hours(6)).state(), config::v1::COMPLETED);
}

TEST_P(ControllerTest, RestartStillCatchesExposedHostsThatStaySilent) {
  CompleteGood();
  auto r = Start("bad");
  ASSERT_OK(r);
  RunFor(r->id(), absl::Seconds(70));  // canaries took it and died
  ASSERT_EQ(State(r->id()).state(), config::v1::RUNNING);
  ASSERT_GT(Exposed(r->id()), 0u);
  Restart();
  const Rollout halted = RunFor(r->id(), absl::Minutes(30));
  EXPECT_EQ(halted.state(), config::v1::HALTED);
  EXPECT_THAT(halted.reason(),
              ::testing::AnyOf(HasSubstr("silent"), HasSubstr("apply_stuck")));
}

TEST_P(ControllerTest, RestartKeepsTheSequentialTestsEvidence) {
  Fleet(/*crash_per_host_hour=*/0.05);
  auto r = Start("good");
  ASSERT_OK(r);
  RunFor(r->id(), absl::Minutes(20));  // stage "half": many hosts, crashes
  auto before = controller_->GetRollout(r->id());
  ASSERT_OK(before);
  double e_before = 0;
  uint64_t control_crashes = 0;
  for (const SignalCounts& c : before->telemetry.signal_counts) {
    if (c.signal == "crash") {
      e_before = c.e_value;
      control_crashes = c.control_affected;
    }
  }
  ASSERT_GT(control_crashes, 0u);  // the test has seen evidence
  ASSERT_NE(e_before, 1.0);
  Restart();
  auto after = controller_->GetRollout(r->id());
  ASSERT_OK(after);
  for (const SignalCounts& c : after->telemetry.signal_counts) {
    if (c.signal == "crash") {
      EXPECT_DOUBLE_EQ(c.e_value, e_before);
    }
  }
}

// Telemetry acknowledged through AfterCheckpoint survives a restart at any
// point: random batches of crash reports (each from new control hosts),
// ticks, failing store writes and restarts, in random order. After every
// restart, every host whose report was acknowledged OK counts as affected.
TEST_P(ControllerTest, AcknowledgedTelemetrySurvivesARestartAtAnyPoint) {
  auto r = Start("good");
  ASSERT_OK(r);
  auto crash_hosts = [&] {
    auto st = controller_->GetRollout(r->id());
    EXPECT_OK(st);
    for (const SignalCounts& c : st->telemetry.signal_counts) {
      if (c.signal == "crash") return c.control_affected;
    }
    return uint64_t{0};
  };
  std::mt19937_64 rng(GetParam().name.size());
  // Shared with the callbacks, which may run after the controller is gone.
  auto acked = std::make_shared<uint64_t>(0);
  auto refused = std::make_shared<uint64_t>(0);
  int next_host = 0, restarts = 0;
  for (int step = 0; step < 300; ++step) {
    switch (rng() % 6) {
      case 0:
      case 1:
      case 2: {  // a batch of 1 to 3 crash reports, acknowledged when durable
        std::vector<TelemetryEvent> batch;
        for (int k = 0, n = 1 + static_cast<int>(rng() % 3); k < n; ++k) {
          TelemetryEvent e;
          e.host_id = absl::StrCat("control-", next_host++);
          e.type = EventType::kCrash;
          batch.push_back(e);
          HostInfo h = HostAt(100);  // not in the first stage
          h.host_id = e.host_id;
          controller_->Assign(h, kType);  // checks in: of the population
        }
        ASSERT_OK(controller_->Ingest(batch));
        const uint64_t n = batch.size();
        controller_->AfterCheckpoint([acked, refused, n](absl::Status s) {
          (s.ok() ? *acked : *refused) += n;
        });
        break;
      }
      case 3:
        clock_.Advance(absl::Milliseconds(100));
        controller_->Tick().IgnoreError();
        break;
      case 4:
        if (rng() % 2 == 0) {
          faulty_->FailWrites(absl::UnavailableError("disk gone"));
        } else {
          faulty_->Heal();
        }
        break;
      case 5: {
        faulty_->Heal();
        const uint64_t before_restart = *acked;
        Restart();
        ++restarts;
        // Everything acknowledged before the restart is there.
        EXPECT_GE(crash_hosts(), before_restart) << "step " << step;
        break;
      }
    }
  }
  faulty_->Heal();
  clock_.Advance(absl::Milliseconds(100));
  ASSERT_OK(controller_->Tick());
  EXPECT_GT(restarts, 5);
  EXPECT_GT(*acked, 20u);   // the test did acknowledge reports
  EXPECT_GT(*refused, 0u);  // and refused some while writes failed
  const uint64_t final_acked = *acked;
  Restart();
  EXPECT_GE(crash_hosts(), final_acked);
}

// The rule behind "evidence survives restarts exactly", for the control
// arm: a host that checked in belongs to the release's population, and its
// telemetry counts whether or not the server restarted between its
// check-in and the telemetry (as when a host crashes while the server is
// down and reports it when the server is back, before it checks in again).
// Random check-ins, crash and unclean-boot reports from admitted and
// unknown hosts, ticks and restarts (each after a checkpoint); a model says
// which hosts count.
TEST_P(ControllerTest, ControlEvidenceCountsTheSameAcrossRestarts) {
  auto r = Start("good");
  ASSERT_OK(r);
  auto control_affected = [&](absl::string_view signal) {
    auto st = controller_->GetRollout(r->id());
    EXPECT_OK(st);
    for (const SignalCounts& c : st->telemetry.signal_counts) {
      if (c.signal == signal) return c.control_affected;
    }
    return uint64_t{0};
  };
  std::mt19937_64 rng(GetParam().name.size() + 7);
  absl::flat_hash_set<int> admitted, crashed, rebooted;
  int restarts = 0;
  for (int step = 0; step < 600; ++step) {
    // Hosts 100..179: not in the canary's audience, so in control.
    const int host = 100 + static_cast<int>(rng() % 80);
    TelemetryEvent e;
    e.host_id = HostAt(host).host_id;
    e.time = clock_.Now();
    switch (rng() % 7) {
      case 0:
      case 1: {  // a check-in of a host of the population
        const Assignment a = controller_->Assign(HostAt(host), kType);
        ASSERT_EQ(a.release, nullptr) << "host " << host;
        admitted.insert(host);
        break;
      }
      case 2:
        e.type = EventType::kCrash;
        ASSERT_OK(controller_->Ingest({e}));
        if (admitted.contains(host)) crashed.insert(host);
        break;
      case 3:
        e.type = EventType::kBoot;
        e.clean = false;
        ASSERT_OK(controller_->Ingest({e}));
        if (admitted.contains(host)) rebooted.insert(host);
        break;
      case 4:
        e.type = EventType::kHeartbeat;
        ASSERT_OK(controller_->Ingest({e}));
        break;
      case 5:
        clock_.Advance(absl::Seconds(1));
        ASSERT_OK(controller_->Tick());
        break;
      case 6:
        // A checkpoint covers everything so far, then the process dies.
        clock_.Advance(absl::Seconds(1));
        ASSERT_OK(controller_->Tick());
        Restart();
        ++restarts;
        break;
    }
    ASSERT_EQ(control_affected("crash"), crashed.size()) << "step " << step;
    ASSERT_EQ(control_affected("unclean_reboot"), rebooted.size())
        << "step " << step;
  }
  EXPECT_GT(restarts, 20);
  EXPECT_GT(crashed.size(), 20u);  // the model did count hosts
  EXPECT_GT(rebooted.size(), 20u);
}

TEST_P(ControllerTest, CheckGateAnswersCi) {
  auto r = Start("good");
  ASSERT_OK(r);
  auto c = controller_->CheckGate("good", "canary");
  ASSERT_OK(c);
  EXPECT_EQ(c->status, GateStatus::kCleared);
  c = controller_->CheckGate("good", "all");
  ASSERT_OK(c);
  EXPECT_EQ(c->status, GateStatus::kPending);
  EXPECT_THAT(
      controller_->CheckGate("good", "nope"),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("no stage \"nope\"")));
  EXPECT_THAT(controller_->CheckGate("unknown", ""),
              StatusIs(absl::StatusCode::kNotFound));
  RunFor(r->id(), absl::Hours(6));
  c = controller_->CheckGate("good", "");
  ASSERT_OK(c);
  EXPECT_EQ(c->status, GateStatus::kCleared);
  auto b = Start("bad");
  ASSERT_OK(b);
  RunFor(b->id(), absl::Hours(1));
  c = controller_->CheckGate("bad", "");
  ASSERT_OK(c);
  EXPECT_EQ(c->status, GateStatus::kRejected);
  EXPECT_THAT(c->explanation, HasSubstr("halted"));
}

TEST_P(ControllerTest, PinnedAndLateTracks) {
  CompleteGood();
  auto r = Start("next");
  ASSERT_OK(r);
  const HostInfo pinned = HostAt(3);  // tenant-3
  const HostInfo late = HostAt(54);   // tenant-4
  bool late_before_late_stage = false;
  for (int step = 0; step < 6 * 360; ++step) {
    ASSERT_OK(Fleet().Step(absl::Seconds(10)));
    const Rollout cur = State(r->id());
    const Assignment p = controller_->Assign(pinned, kType);
    ASSERT_NE(p.release, nullptr);
    EXPECT_EQ(p.release->id(), "good");
    const Assignment l = controller_->Assign(late, kType);
    if (l.release != nullptr && l.release->id() == "next" &&
        static_cast<int>(cur.stage()) < plan_.stages_size()) {
      late_before_late_stage = true;
    }
    if (IsTerminal(cur.state())) break;
  }
  EXPECT_FALSE(late_before_late_stage);
  EXPECT_EQ(State(r->id()).state(), config::v1::COMPLETED);
  EXPECT_EQ(controller_->Assign(late, kType).release->id(), "next");
  EXPECT_EQ(controller_->Assign(pinned, kType).reason, AssignReason::kPinned);
}

TEST_P(ControllerTest, NotTargetedHostsKeepTheBaseline) {
  CompleteGood();
  Release r = MakeRelease("win-only", 'd');
  r.mutable_targeting()->add_platforms("linux");
  ASSERT_OK(controller_->CreateRelease(r, "ci"));
  auto ro = Start("win-only");
  ASSERT_OK(ro);
  const Assignment a = controller_->Assign(HostAt(0), kType);  // windows
  EXPECT_EQ(a.reason, AssignReason::kNotTargeted);
  ASSERT_NE(a.release, nullptr);
  EXPECT_EQ(a.release->id(), "good");
}

INSTANTIATE_TEST_SUITE_P(
    Stores, ControllerTest,
    ::testing::ValuesIn(::ringfence::testing::AllStoreFactories()),
    [](const ::testing::TestParamInfo<StoreFactory>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace ringfence
