// End-to-end tests of operator actions with a live fleet (pause, resume,
// promote, abort, emergency stop), of requests that must change nothing
// (out of range, oversized, ValidateRelease), and of health when the store
// fails.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "e2e_fixture.h"

namespace ringfence::e2e {
namespace {

using ::testing::AllOf;

constexpr grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;

class E2EOpsTest : public E2ETest {
 protected:
  // Waits until `n` hosts of `fleet` run `release`.
  static bool WaitForRunning(const FleetEmulator& fleet,
                             const std::string& release, int n) {
    return Eventually([&] { return fleet.Running(release) == n; },
                      absl::Seconds(10));
  }

  grpc::Status ActWithReason(const std::string& action, const std::string& id,
                             const std::string& reason,
                             Rollout* out = nullptr) {
    v1::RolloutActionRequest req;
    req.set_rollout_id(id);
    req.set_reason(reason);
    Rollout resp;
    auto ctx = Ctx(kOperatorToken);
    grpc::Status s = action == "pause"
                         ? rollouts_->PauseRollout(ctx.get(), req, &resp)
                         : rollouts_->PromoteRollout(ctx.get(), req, &resp);
    if (out != nullptr) *out = resp;
    return s;
  }
};

TEST_F(E2EOpsTest, PauseFreezesExposureAndPromoteIsAnOverride) {
  ASSERT_THAT(CreateRelease("cf330-v1", "channel-file/330"), GrpcOk());
  ASSERT_THAT(StartRollout("live-1", "cf330-v1", ParsePlan(kLivePlan)),
              GrpcOk());
  FleetEmulator fleet(Fleet("channel-file/330"));
  fleet.Start();
  ASSERT_TRUE(WaitForRunning(fleet, "cf330-v1", 5))
      << fleet.Running("cf330-v1") << " " << fleet.first_error();

  CommandResult r =
      Ctl({"rollout", "pause", "live-1", "--reason=looking at dogfood"},
          kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("paused"));

  // Promote needs a reason, and is recorded as an override.
  EXPECT_THAT(ActWithReason("promote", "live-1", ""),
              GrpcStatusIs(kInvalid, HasSubstr("reason")));
  r = Ctl({"rollout", "promote", "live-1"}, kOperatorToken);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("missing --reason"));
  Rollout promoted;
  ASSERT_THAT(ActWithReason("promote", "live-1", "dogfood is fine", &promoted),
              GrpcOk());
  EXPECT_EQ(promoted.state(), cfg::PAUSED);
  EXPECT_EQ(promoted.stage(), 1u);
  EXPECT_TRUE(promoted.overridden());

  // Paused in the fleet stage: exposure stays frozen; the exposed hosts keep
  // the release, the others are told to wait.
  EXPECT_TRUE(Eventually(
      [&] {
        return fleet.WithReason(v1::EXPOSED) == 5 &&
               fleet.WithReason(v1::PAUSED) == 25;
      },
      absl::Seconds(10)))
      << fleet.WithReason(v1::EXPOSED) << " " << fleet.WithReason(v1::PAUSED);
  const int polls = fleet.polls();
  ASSERT_TRUE(Eventually([&] { return fleet.polls() >= polls + 90; },
                         absl::Seconds(10)));  // three more rounds
  EXPECT_EQ(fleet.Running("cf330-v1"), 5);
  EXPECT_EQ(fleet.WithReason(v1::PAUSED), 25);
  const v1::GetRolloutResponse paused = GetRollout("live-1");
  EXPECT_EQ(paused.telemetry().treatment_hosts(), 5u);
  EXPECT_TRUE(paused.rollout().overridden());

  r = Ctl({"rollout", "resume", "live-1", "--reason=go"}, kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(WaitForRunning(fleet, "cf330-v1", 30));
  EXPECT_EQ(GetRollout("live-1").rollout().state(), cfg::RUNNING);
  fleet.Stop();
  EXPECT_EQ(fleet.errors(), 0) << fleet.first_error();
}

TEST_F(E2EOpsTest, PausedRolloutStillHaltsOnBadTelemetry) {
  ASSERT_THAT(CreateRelease("cf331-good", "channel-file/331", kDigestA),
              GrpcOk());
  ASSERT_THAT(CreateRelease("cf331-bad", "channel-file/331", kDigestB),
              GrpcOk());
  AdoptBaseline("cf331-good", ParsePlan(kLivePlan));
  ASSERT_THAT(StartRollout("crashy-1", "cf331-bad", ParsePlan(kLivePlan),
                           nullptr, "cf331-good"),
              GrpcOk());
  FleetEmulator fleet(Fleet("channel-file/331"));
  fleet.Start();
  ASSERT_TRUE(WaitForRunning(fleet, "cf331-bad", 5));
  ASSERT_THAT(Act("pause", "crashy-1", kOperatorToken), GrpcOk());

  // Four of the five exposed hosts crash: over the circuit breaker (3).
  v1::ReportTelemetryRequest crashes;
  for (int i = 0; i < 4; ++i) {
    v1::TelemetryEvent* e = crashes.add_events();
    e->set_host_id(absl::StrCat("host-00", i));
    e->set_type(v1::CRASH);
    e->set_release_id("cf331-bad");
  }
  v1::ReportTelemetryResponse resp;
  ASSERT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), crashes, &resp),
              GrpcOk());

  EXPECT_TRUE(WaitForState("crashy-1", cfg::HALTED, absl::Seconds(10)))
      << GetRollout("crashy-1").DebugString();
  const Decision d = GetRollout("crashy-1").rollout().last_decision();
  EXPECT_EQ(d.verdict(), cfg::HALT);
  ASSERT_GT(d.evidence_size(), 0);
  EXPECT_EQ(d.evidence(0).rule(), "circuit_breaker");
  EXPECT_EQ(d.evidence(0).signal(), "crash");

  // Every host goes (back) to the baseline (those never exposed had it).
  EXPECT_TRUE(
      Eventually([&] { return fleet.WithReason(v1::ROLLED_BACK) == 30; },
                 absl::Seconds(10)))
      << fleet.WithReason(v1::ROLLED_BACK);
  EXPECT_TRUE(WaitForRunning(fleet, "cf331-good", 30))
      << fleet.Running("cf331-good");
  fleet.Stop();
}

TEST_F(E2EOpsTest, AbortRevertsEveryHostToTheBaseline) {
  ASSERT_THAT(CreateRelease("cf332-good", "channel-file/332", kDigestA),
              GrpcOk());
  ASSERT_THAT(CreateRelease("cf332-new", "channel-file/332", kDigestB),
              GrpcOk());
  AdoptBaseline("cf332-good", ParsePlan(kLivePlan));
  ASSERT_THAT(StartRollout("abort-1", "cf332-new", ParsePlan(kLivePlan),
                           nullptr, "cf332-good"),
              GrpcOk());
  FleetEmulator fleet(Fleet("channel-file/332"));
  fleet.Start();
  ASSERT_TRUE(WaitForRunning(fleet, "cf332-new", 5));
  CommandResult r = Ctl(
      {"rollout", "promote", "abort-1", "--reason=dogfood ok"}, kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WaitForRunning(fleet, "cf332-new", 30));

  r = Ctl({"rollout", "abort", "abort-1", "--reason=customer report"},
          kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("aborted"));
  EXPECT_TRUE(
      Eventually([&] { return fleet.WithReason(v1::ROLLED_BACK) == 30; },
                 absl::Seconds(10)))
      << fleet.WithReason(v1::ROLLED_BACK);
  EXPECT_TRUE(WaitForRunning(fleet, "cf332-good", 30))
      << fleet.Running("cf332-good");
  const v1::GetRolloutResponse st = GetRollout("abort-1");
  EXPECT_EQ(st.rollout().state(), cfg::ABORTED);
  EXPECT_THAT(st.rollout().reason(),
              HasSubstr("aborted by alice: customer report"));
  r = Ctl({"gate", "check", "--release=cf332-new"}, kPublisherToken);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  fleet.Stop();
  EXPECT_EQ(fleet.errors(), 0) << fleet.first_error();
}

TEST_F(E2EOpsTest, EmergencyStopWithRingctl) {
  ASSERT_THAT(CreateRelease("cf333-good", "channel-file/333", kDigestA),
              GrpcOk());
  ASSERT_THAT(CreateRelease("cf333-new", "channel-file/333", kDigestB),
              GrpcOk());
  AdoptBaseline("cf333-good", ParsePlan(kLivePlan));
  ASSERT_THAT(StartRollout("estop-1", "cf333-new", ParsePlan(kLivePlan),
                           nullptr, "cf333-good"),
              GrpcOk());
  FleetEmulator fleet(Fleet("channel-file/333"));
  fleet.Start();
  ASSERT_TRUE(WaitForRunning(fleet, "cf333-new", 5));

  const std::vector<std::string> stop = {"emergency-stop",
                                         "--content-type=channel-file/333",
                                         "--reason=bad channel file"};
  CommandResult r = Ctl(stop, kPublisherToken);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED"));
  std::vector<std::string> json_stop = stop;
  json_stop.push_back("--json");
  r = Ctl(json_stop, kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out,
              AllOf(HasSubstr("halted_rollout_ids"), HasSubstr("estop-1")));

  const v1::GetRolloutResponse st = GetRollout("estop-1");
  EXPECT_EQ(st.rollout().state(), cfg::HALTED);
  EXPECT_THAT(st.rollout().reason(), HasSubstr("emergency stop"));
  EXPECT_TRUE(
      Eventually([&] { return fleet.WithReason(v1::EMERGENCY_STOP) == 30; },
                 absl::Seconds(10)))
      << fleet.WithReason(v1::EMERGENCY_STOP);
  EXPECT_TRUE(WaitForRunning(fleet, "cf333-good", 30));

  // No new rollout of the content type until the stop is cleared.
  EXPECT_THAT(StartRollout("estop-2", "cf333-new", ParsePlan(kLivePlan)),
              GrpcStatusIs(grpc::StatusCode::FAILED_PRECONDITION,
                           HasSubstr("emergency stop")));
  r = Ctl({"emergency-stop", "--content-type=channel-file/333", "--clear"},
          kOperatorToken);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("missing --reason"));
  r = Ctl({"emergency-stop", "--content-type=channel-file/333", "--clear",
           "--reason=fixed"},
          kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("cleared"));
  EXPECT_THAT(StartRollout("estop-2", "cf333-new", ParsePlan(kLivePlan)),
              GrpcOk());
  fleet.Stop();
  EXPECT_EQ(fleet.errors(), 0) << fleet.first_error();
}

TEST_F(E2EOpsTest, OutOfRangeRequestsAreRejectedAndChangeNothing) {
  ASSERT_THAT(CreateRelease("cf334-a", "channel-file/334"), GrpcOk());
  ASSERT_THAT(CreateRelease("cf335-a", "channel-file/335"), GrpcOk());
  Rollout existing;
  ASSERT_THAT(
      StartRollout("oor-1", "cf334-a", ParsePlan(kManualPlan), &existing),
      GrpcOk());
  const std::string before = ListedState();

  // StartRollout (of a content type with no active rollout).
  struct PlanCase {
    const char* name;
    std::function<void(Plan*)> mutate;
    std::string field;
  };
  const std::vector<PlanCase> plan_cases = {
      {"negative bake time",
       [](Plan* p) {
         p->mutable_stages(0)->mutable_bake_time()->set_seconds(-5);
       },
       "plan.stages[0].bake_time: must not be negative"},
      {"bake time over a year",
       [](Plan* p) {
         p->mutable_stages(1)->mutable_bake_time()->set_seconds(400LL * 86400);
       },
       "plan.stages[1].bake_time: must be at most one year"},
      {"silence timeout with bad nanos",
       [](Plan* p) {
         p->mutable_policy()->mutable_silence_timeout()->set_nanos(2000000000);
       },
       "plan.policy.silence_timeout"},
      {"percent over 100",
       [](Plan* p) {
         p->mutable_stages(1)->mutable_audience()->set_percent(150);
       },
       "plan.stages[1].audience.percent"},
      {"65 stages",
       [](Plan* p) {
         while (p->stages_size() < 65) *p->add_stages() = p->stages(0);
       },
       "plan.stages: at most 64"},
  };
  for (const PlanCase& c : plan_cases) {
    SCOPED_TRACE(c.name);
    Plan plan = ParsePlan(kManualPlan);
    c.mutate(&plan);
    EXPECT_THAT(StartRollout("oor-2", "cf335-a", plan),
                GrpcStatusIs(kInvalid, HasSubstr(c.field)));
  }
  EXPECT_THAT(
      StartRollout(std::string(129, 'r'), "cf335-a", ParsePlan(kManualPlan)),
      GrpcStatusIs(kInvalid, HasSubstr("rollout_id")));
  {
    v1::StartRolloutRequest req;
    req.set_release_id("cf335-a");
    *req.mutable_plan() = ParsePlan(kManualPlan);
    req.set_reason(std::string(1025, 'x'));
    Rollout resp;
    EXPECT_THAT(rollouts_->StartRollout(Ctx(kPublisherToken).get(), req, &resp),
                GrpcStatusIs(kInvalid, HasSubstr("reason: must be at most")));
  }
  // ringctl says the same, exit 2.
  Plan negative = ParsePlan(kManualPlan);
  negative.mutable_stages(0)->mutable_bake_time()->set_seconds(-1);
  CommandResult r = Ctl(
      {"rollout", "start", "--release=cf335-a",
       "--plan=" + WritePlan("neg", negative.DebugString()), "--reason=try"},
      kPublisherToken);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("plan.stages[0].bake_time"));

  // Actions on the existing rollout.
  EXPECT_THAT(ActWithReason("pause", "oor-1", std::string(1025, 'x')),
              GrpcStatusIs(kInvalid, HasSubstr("reason")));
  EXPECT_THAT(ActWithReason("pause", std::string(129, 'r'), "why"),
              GrpcStatusIs(kInvalid, HasSubstr("rollout_id")));
  {
    v1::WatchRolloutRequest req;
    req.set_rollout_id("oor-1");
    req.mutable_poll_interval()->set_nanos(1000000);  // 1ms
    auto ctx = Ctx(kOperatorToken);
    auto reader = rollouts_->WatchRollout(ctx.get(), req);
    v1::GetRolloutResponse update;
    EXPECT_FALSE(reader->Read(&update));
    EXPECT_THAT(reader->Finish(),
                GrpcStatusIs(kInvalid, HasSubstr("poll_interval")));
  }

  // Releases.
  {
    v1::CreateReleaseRequest req;
    Release* rel = req.mutable_release();
    rel->set_id("cf335-b");
    rel->set_content_type("channel-file/335");
    rel->set_digest_sha256(kDigestA);
    rel->set_size_bytes(1);
    rel->set_version(std::string(129, 'v'));
    Release resp;
    EXPECT_THAT(
        releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp),
        GrpcStatusIs(kInvalid, HasSubstr("release.version")));
    rel->clear_version();
    rel->set_id(std::string(129, 'i'));
    EXPECT_THAT(
        releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp),
        GrpcStatusIs(kInvalid, HasSubstr("release.id")));
  }

  // Fleet.
  {
    v1::GetAssignmentRequest req;
    req.set_host_id("host-1");
    req.add_content_types("channel-file/334");
    for (int i = 0; i < 65; ++i) req.add_labels(absl::StrCat("l", i));
    v1::GetAssignmentResponse resp;
    EXPECT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &resp),
                GrpcStatusIs(kInvalid, HasSubstr("labels: at most 64")));
    req.clear_labels();
    req.set_host_id(std::string(129, 'h'));
    EXPECT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &resp),
                GrpcStatusIs(kInvalid, HasSubstr("host_id")));
    req.set_host_id("host-1");
    for (int i = 0; i < 65; ++i) req.add_content_types("channel-file/334");
    EXPECT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &resp),
                GrpcStatusIs(kInvalid, HasSubstr("content_types: at most 64")));
  }
  {
    v1::ReportTelemetryRequest req;
    v1::TelemetryEvent* e = req.add_events();
    e->set_host_id(std::string(129, 'h'));
    e->set_type(v1::HEARTBEAT);
    v1::ReportTelemetryResponse resp;
    EXPECT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp),
                GrpcStatusIs(kInvalid, HasSubstr("events[0].host_id")));
  }

  // Nothing changed: the same releases and rollouts, the rollout untouched.
  EXPECT_EQ(ListedState(), before);
  EXPECT_EQ(GetRollout("oor-1").rollout().version(), existing.version());
  EXPECT_EQ(GetRollout("oor-1").telemetry().tracked_hosts(), 0u);
}

// What an independent client sent that used to break the server for
// everyone: each is refused with INVALID_ARGUMENT naming the field, in a
// message short enough for any client, and nothing changes; the same
// connection then serves reads as before.
TEST_F(E2EOpsTest, IndependentClientInputsAreRefusedAndReadsStayServed) {
  ASSERT_THAT(CreateRelease("cf340-a", "channel-file/340"), GrpcOk());
  ASSERT_THAT(StartRollout("bounds-1", "cf340-a", ParsePlan(kManualPlan)),
              GrpcOk());
  const std::string before = ListedState();
  const std::string mib(1 << 20, 's');
  auto short_invalid = [](const std::string& message) {
    return GrpcStatusIs(
        kInvalid, AllOf(HasSubstr(message), testing::SizeIs(testing::Lt(600))));
  };

  // CheckGate with a 1 MiB stage: it used to come back in the NOT_FOUND
  // message, a 1 MB grpc-message header.
  {
    v1::CheckGateRequest req;
    req.set_release_id("cf340-a");
    req.set_stage(mib);
    v1::CheckGateResponse resp;
    EXPECT_THAT(
        rollouts_->CheckGate(Ctx(kOperatorToken).get(), req, &resp),
        short_invalid("stage: must be at most 128 characters (got 1048576)"));
    // A well-formed unknown stage is still NOT_FOUND, quoted.
    req.set_stage(std::string(128, 'z'));
    EXPECT_THAT(rollouts_->CheckGate(Ctx(kOperatorToken).get(), req, &resp),
                GrpcStatusIs(grpc::StatusCode::NOT_FOUND,
                             HasSubstr("has no stage \"zzz")));
  }
  // CreateRelease with a 10 MB fetch_url: it used to be stored, and every
  // GetRelease and ListReleases after it failed at gRPC's default 4 MB.
  {
    v1::CreateReleaseRequest req;
    Release* rel = req.mutable_release();
    rel->set_id("cf340-big");
    rel->set_content_type("channel-file/340");
    rel->set_digest_sha256(kDigestA);
    rel->set_size_bytes(1);
    rel->set_fetch_url("https://u.example/" + std::string(10 << 20, 'x'));
    Release resp;
    EXPECT_THAT(
        releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp),
        short_invalid("release.fetch_url: must be at most 2048 bytes (got "
                      "10485778)"));
    // The same with a payload (the call that runs the content checks on a
    // thread of its own).
    req.set_payload("payload");
    EXPECT_THAT(
        releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp),
        short_invalid("release.fetch_url: must be at most 2048 bytes"));
    v1::ValidateReleaseRequest vreq;
    *vreq.mutable_release() = req.release();
    v1::ValidateReleaseResponse vresp;
    EXPECT_THAT(
        releases_->ValidateRelease(Ctx(kPublisherToken).get(), vreq, &vresp),
        short_invalid("release.fetch_url: must be at most 2048 bytes"));

    rel->set_fetch_url("https://u.example/cf340-big");
    rel->set_size_bytes(UINT64_MAX);
    req.clear_payload();
    EXPECT_THAT(
        releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp),
        short_invalid("release.size_bytes: must be at most 1099511627776"));
    rel->set_size_bytes(1);
    rel->mutable_created_at()->set_seconds(INT64_MAX);
    EXPECT_THAT(
        releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp),
        short_invalid("release.created_at: must be between"));
  }
  // ListRollouts with an unknown state.
  {
    v1::ListRolloutsRequest req;
    req.add_states(static_cast<cfg::RolloutState>(99));
    v1::ListRolloutsResponse resp;
    EXPECT_THAT(
        rollouts_->ListRollouts(Ctx(kOperatorToken).get(), req, &resp),
        short_invalid("states[0]: must be one of PENDING, RUNNING, PAUSED, "
                      "HALTED, ABORTED, COMPLETED (got 99)"));
  }
  // A 1 MiB baseline (it used to come back in the NOT_FOUND message).
  {
    v1::StartRolloutRequest req;
    req.set_release_id("cf340-a");
    *req.mutable_plan() = ParsePlan(kManualPlan);
    req.set_baseline_release_id(mib);
    req.set_reason("bounds");
    Rollout resp;
    EXPECT_THAT(
        rollouts_->StartRollout(Ctx(kPublisherToken).get(), req, &resp),
        short_invalid("baseline_release_id: must be at most 128 characters"));
  }
  // A telemetry event from before year 1.
  {
    v1::ReportTelemetryRequest req;
    v1::TelemetryEvent* e = req.add_events();
    e->set_host_id("host-1");
    e->set_type(v1::HEARTBEAT);
    e->mutable_time()->set_seconds(INT64_MIN);
    v1::ReportTelemetryResponse resp;
    EXPECT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp),
                short_invalid("events[0].time: must be between"));
  }

  // Nothing changed, and the fixture's connection (gRPC's default 4 MB
  // receive limit) reads everything as before.
  EXPECT_EQ(ListedState(), before);
  v1::GetReleaseRequest get;
  get.set_release_id("cf340-a");
  Release got;
  EXPECT_THAT(releases_->GetRelease(Ctx(kOperatorToken).get(), get, &got),
              GrpcOk());
  EXPECT_EQ(got.fetch_url(), "https://updates.example/cf340-a");
}

// Every method refuses an oversized field before doing anything, through
// the real handlers (the per-field cases are request_validation_test's).
TEST_F(E2EOpsTest, EveryMethodChecksItsRequestBounds) {
  ASSERT_THAT(CreateRelease("cf341-a", "channel-file/341"), GrpcOk());
  ASSERT_THAT(StartRollout("bounds-2", "cf341-a", ParsePlan(kManualPlan)),
              GrpcOk());
  const std::string before = ListedState();
  const std::string mib(1 << 20, 'x');
  const std::string too_long = "must be at most 128 characters (got 1048576)";

  struct Case {
    const char* method;
    std::function<grpc::Status()> call;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"CreateRelease",
       [&] {
         v1::CreateReleaseRequest req;
         req.mutable_release()->set_id(mib);
         Release resp;
         return releases_->CreateRelease(Ctx(kPublisherToken).get(), req,
                                         &resp);
       },
       "release.id: " + too_long},
      {"ValidateRelease",
       [&] {
         v1::ValidateReleaseRequest req;
         req.mutable_release()->set_id(mib);
         v1::ValidateReleaseResponse resp;
         return releases_->ValidateRelease(Ctx(kPublisherToken).get(), req,
                                           &resp);
       },
       "release.id: " + too_long},
      {"GetRelease",
       [&] {
         v1::GetReleaseRequest req;
         req.set_release_id(mib);
         Release resp;
         return releases_->GetRelease(Ctx(kOperatorToken).get(), req, &resp);
       },
       "release_id: " + too_long},
      {"ListReleases",
       [&] {
         v1::ListReleasesRequest req;
         req.set_content_type(mib);
         v1::ListReleasesResponse resp;
         return releases_->ListReleases(Ctx(kOperatorToken).get(), req, &resp);
       },
       "content_type: " + too_long},
      {"StartRollout",
       [&] {
         v1::StartRolloutRequest req;
         req.set_release_id("cf341-a");
         req.set_reason("bounds");
         *req.mutable_plan() = ParsePlan(kManualPlan);
         req.mutable_plan()->mutable_stages(0)->mutable_audience()->add_labels(
             mib);
         Rollout resp;
         return rollouts_->StartRollout(Ctx(kPublisherToken).get(), req, &resp);
       },
       "plan.stages[0].audience.labels[1]: " + too_long},
      {"GetRollout",
       [&] {
         v1::GetRolloutRequest req;
         req.set_rollout_id(mib);
         v1::GetRolloutResponse resp;
         return rollouts_->GetRollout(Ctx(kOperatorToken).get(), req, &resp);
       },
       "rollout_id: " + too_long},
      {"ListRollouts",
       [&] {
         v1::ListRolloutsRequest req;
         req.set_release_id(mib);
         v1::ListRolloutsResponse resp;
         return rollouts_->ListRollouts(Ctx(kOperatorToken).get(), req, &resp);
       },
       "release_id: " + too_long},
      {"WatchRollout",
       [&] {
         v1::WatchRolloutRequest req;
         req.set_rollout_id(mib);
         auto ctx = Ctx(kOperatorToken);
         auto reader = rollouts_->WatchRollout(ctx.get(), req);
         v1::GetRolloutResponse update;
         EXPECT_FALSE(reader->Read(&update));
         return reader->Finish();
       },
       "rollout_id: " + too_long},
      {"PauseRollout", [&] { return ActWithReason("pause", "bounds-2", mib); },
       "reason: must be at most 1024 characters (got 1048576)"},
      {"ResumeRollout", [&] { return Act("resume", mib, kOperatorToken); },
       "rollout_id: " + too_long},
      {"AbortRollout", [&] { return Act("abort", mib, kOperatorToken); },
       "rollout_id: " + too_long},
      {"PromoteRollout", [&] { return Act("promote", mib, kOperatorToken); },
       "rollout_id: " + too_long},
      {"EmergencyStop",
       [&] {
         v1::EmergencyStopRequest req;
         req.set_content_type(mib);
         req.set_reason("bounds");
         v1::EmergencyStopResponse resp;
         return rollouts_->EmergencyStop(Ctx(kOperatorToken).get(), req, &resp);
       },
       "content_type: " + too_long},
      {"ClearEmergencyStop",
       [&] {
         v1::ClearEmergencyStopRequest req;
         req.set_content_type("channel-file/341");
         req.set_reason(mib);
         v1::ClearEmergencyStopResponse resp;
         return rollouts_->ClearEmergencyStop(Ctx(kOperatorToken).get(), req,
                                              &resp);
       },
       "reason: must be at most 1024 characters (got 1048576)"},
      {"CheckGate",
       [&] {
         v1::CheckGateRequest req;
         req.set_release_id(mib);
         v1::CheckGateResponse resp;
         return rollouts_->CheckGate(Ctx(kOperatorToken).get(), req, &resp);
       },
       "release_id: " + too_long},
      {"GetAssignment",
       [&] {
         v1::GetAssignmentRequest req;
         req.set_host_id("host-1");
         req.set_platform(mib);
         req.add_content_types("channel-file/341");
         v1::GetAssignmentResponse resp;
         return fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &resp);
       },
       "platform: " + too_long},
      {"ReportTelemetry",
       [&] {
         v1::ReportTelemetryRequest req;
         v1::TelemetryEvent* e = req.add_events();
         e->set_host_id("host-1");
         e->set_type(v1::HEARTBEAT);
         e->set_release_id(mib);
         v1::ReportTelemetryResponse resp;
         return fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp);
       },
       "events[0].release_id: " + too_long},
      {"StreamTelemetry",
       [&] {
         auto ctx = Ctx(kRelayToken);
         v1::StreamTelemetryResponse resp;
         auto writer = fleet_->StreamTelemetry(ctx.get(), &resp);
         v1::TelemetryBatch batch;
         v1::TelemetryEvent* e = batch.add_events();
         e->set_host_id(mib);
         e->set_type(v1::HEARTBEAT);
         writer->Write(batch);
         writer->WritesDone();
         return writer->Finish();
       },
       "message 0 of the stream: events[0].host_id: " + too_long},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method);
    const grpc::Status s = c.call();
    EXPECT_THAT(s, GrpcStatusIs(kInvalid, HasSubstr(c.message)));
    EXPECT_LT(s.error_message().size(), 600u);
  }
  EXPECT_EQ(ListedState(), before);
  EXPECT_EQ(GetRollout("bounds-2").rollout().state(), cfg::RUNNING);
}

TEST_F(E2EOpsTest, OversizedMessagesAreRejected) {
  StartServer({"--max_message_bytes=65536"});
  const std::string before = ListedState();
  {
    v1::CreateReleaseRequest req;
    Release* rel = req.mutable_release();
    rel->set_id("cf336-a");
    rel->set_content_type("channel-file/336");
    rel->set_digest_sha256(kDigestA);
    rel->set_size_bytes(1);
    rel->set_fetch_url("https://u.example/" + std::string(100000, 'x'));
    Release resp;
    EXPECT_THAT(
        releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp),
        GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     HasSubstr("larger than max")));
    // Under the limit it is accepted: the size was the reason.
    rel->set_fetch_url("https://u.example/" + std::string(1000, 'x'));
    rel->set_id("cf336-small");
    EXPECT_THAT(
        releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp),
        GrpcOk());
  }
  const std::string with_small = ListedState();
  EXPECT_NE(with_small, before);
  {
    v1::ReportTelemetryRequest req;
    for (int i = 0; i < 900; ++i) {
      v1::TelemetryEvent* e = req.add_events();
      e->set_host_id(
          absl::StrCat("host-with-a-long-name-", i, "-", std::string(40, 'x')));
      e->set_type(v1::HEARTBEAT);
      e->set_release_id("release-with-a-long-name");
    }
    ASSERT_GT(req.ByteSizeLong(), 65536u);
    v1::ReportTelemetryResponse resp;
    EXPECT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp),
                GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED,
                             HasSubstr("larger than max")));
    auto ctx = Ctx(kRelayToken);
    v1::StreamTelemetryResponse stream_resp;
    auto writer = fleet_->StreamTelemetry(ctx.get(), &stream_resp);
    v1::TelemetryBatch batch;
    *batch.mutable_events() = req.events();
    writer->Write(batch);
    writer->WritesDone();
    EXPECT_THAT(writer->Finish(),
                GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED,
                             HasSubstr("larger than max")));
  }
  EXPECT_EQ(ListedState(), with_small);
}

TEST_F(E2EOpsTest, FleetIsNotServingWhileTheStoreFails) {
  // The store may grow to 128 KiB (the empty schema takes ~52 KiB): fill
  // it with releases until a write fails.
  StartServer({"--max_db_bytes=131072"});
  EXPECT_EQ(HealthStatus("ringfence.v1.Fleet"), 1);
  grpc::Status s;
  int created = 0;
  for (; created < 200; ++created) {
    v1::CreateReleaseRequest req;
    Release* rel = req.mutable_release();
    rel->set_id(absl::StrCat("cf337-", created));
    rel->set_content_type("channel-file/337");
    rel->set_digest_sha256(kDigestA);
    rel->set_size_bytes(1);
    rel->set_fetch_url("https://u.example/" + std::string(2000, 'x'));
    Release resp;
    s = releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp);
    if (!s.ok()) break;
  }
  ASSERT_THAT(s, GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED, testing::_))
      << created << " releases created";
  EXPECT_GT(created, 0);

  // Fail closed: agents are pointed elsewhere (Fleet NOT_SERVING); reads
  // and operator calls stay available.
  EXPECT_TRUE(
      Eventually([&] { return HealthStatus("ringfence.v1.Fleet") == 2; },
                 absl::Seconds(30)));
  EXPECT_EQ(HealthStatus(""), 1);
  EXPECT_EQ(HealthStatus("ringfence.v1.Releases"), 1);
  EXPECT_EQ(HealthStatus("ringfence.v1.Rollouts"), 1);
  v1::ListReleasesResponse releases;
  EXPECT_THAT(releases_->ListReleases(Ctx(kOperatorToken).get(), {}, &releases),
              GrpcOk());
  EXPECT_EQ(releases.releases_size(), created);
  EXPECT_TRUE(Eventually(
      [&] {
        return ReadFile(LogPath(starts_)).find("Fleet NOT_SERVING") !=
               std::string::npos;
      },
      absl::Seconds(30)));
}

TEST_F(E2EOpsTest, ValidateReleaseChecksWithoutStoring) {
  v1::ValidateReleaseRequest req;
  Release* rel = req.mutable_release();
  rel->set_id("cf338-a");
  rel->set_content_type("channel-file/338");
  rel->set_digest_sha256(kDigestA);
  rel->set_size_bytes(40000);
  rel->mutable_targeting()->set_min_agent_version("7.11");
  v1::ValidateReleaseResponse resp;
  ASSERT_THAT(
      releases_->ValidateRelease(Ctx(kPublisherToken).get(), req, &resp),
      GrpcOk());
  EXPECT_TRUE(resp.ok());
  EXPECT_EQ(resp.findings_size(), 0);

  rel->set_digest_sha256("ABC");
  EXPECT_THAT(releases_->ValidateRelease(Ctx(kOperatorToken).get(), req, &resp),
              GrpcStatusIs(kInvalid, HasSubstr("release.digest_sha256")));
  rel->set_digest_sha256(kDigestA);
  rel->mutable_targeting()->set_max_agent_version("7.10");
  EXPECT_THAT(
      releases_->ValidateRelease(Ctx(kAdminToken).get(), req, &resp),
      GrpcStatusIs(kInvalid, HasSubstr("release.targeting.max_agent_version")));
  EXPECT_THAT(releases_->ValidateRelease(Ctx(kRelayToken).get(), req, &resp),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                           HasSubstr("needs role")));

  // ringctl release validate: 0 valid, 2 invalid (naming the field).
  CommandResult r = Ctl(
      {"release", "validate", "--id=cf338-a", "--content-type=channel-file/338",
       std::string("--digest=") + kDigestA, "--size=40000"},
      kPublisherToken);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("release cf338-a is valid"));
  r = Ctl(
      {"release", "validate", "--id=cf338-a", "--content-type=channel-file/338",
       std::string("--digest=") + kDigestA},
      kPublisherToken);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, AllOf(HasSubstr("INVALID_ARGUMENT"),
                           HasSubstr("release.size_bytes")));

  // Nothing was stored: the id is still free.
  v1::ListReleasesResponse releases;
  ASSERT_THAT(releases_->ListReleases(Ctx(kOperatorToken).get(), {}, &releases),
              GrpcOk());
  EXPECT_EQ(releases.releases_size(), 0);
  EXPECT_THAT(CreateRelease("cf338-a", "channel-file/338"), GrpcOk());
}

// Limits that make no sense stop startup (exit 2, the flag named); a host
// table sized up front (--expected_hosts) serves like a grown one.
TEST_F(E2EOpsTest, LimitFlagsAreCheckedAndExpectedHostsServes) {
  server_.reset();
  const std::vector<std::pair<std::string, std::string>> bad_flags = {
      {"--tick_interval=0s", "--tick_interval"},
      {"--max_batch_events=0", "--max_batch_events"},
      {"--max_inflight_events=10", "--max_inflight_events"},
      {"--expected_hosts=100000001", "--expected_hosts"},
      {"--max_streams_per_connection=0", "--max_streams_per_connection"},
      {"--expected_hosts=-1", "expected_hosts"},
      {"--follower_poll_interval=0s", "--follower_poll_interval"},
      {"--follower_max_staleness=300ms", "--follower_max_staleness"},
      {"--follower_forward_deadline=2h", "--follower_forward_deadline"},
      // (gRPC would listen on 99999 modulo 65536.)
      {"--listen=127.0.0.1:99999", "--listen must be host:port"},
      {"--listen=127.0.0.1", "--listen must be host:port"},
      {"--http_listen=127.0.0.1:70000", "--http_listen must be host:port"},
  };
  for (const auto& [flag, message] : bad_flags) {
    const CommandResult bad = RunServerToExit({flag});
    // Flags that do not parse are absl's usage error (1); values that parse
    // but make no sense are ours (2).
    EXPECT_TRUE(bad.exit_code == 1 || bad.exit_code == 2)
        << flag << ": " << bad.exit_code;
    EXPECT_THAT(bad.err, HasSubstr(message)) << flag;
  }

  StartServer({"--expected_hosts=5000"});
  ASSERT_THAT(CreateRelease("cf339-a", "channel-file/339"), GrpcOk());
  ASSERT_THAT(StartRollout("sized-1", "cf339-a", ParsePlan(kManualPlan)),
              GrpcOk());
  v1::GetAssignmentRequest req;
  req.set_host_id("host-1");
  req.add_content_types("channel-file/339");
  v1::GetAssignmentResponse resp;
  ASSERT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &resp),
              GrpcOk());
  ASSERT_EQ(resp.assignments_size(), 1);
  EXPECT_EQ(resp.assignments(0).content_type(), "channel-file/339");
}

}  // namespace
}  // namespace ringfence::e2e
