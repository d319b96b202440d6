// End-to-end tests of the basics: rollouts that complete and halt, roles,
// serving without tokens, malformed requests, CheckGate exit codes,
// restarts, health and shutdown.
// The fixture is in e2e_fixture.h.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "e2e_fixture.h"

namespace ringfence::e2e {
namespace {

TEST_F(E2ETest, GoodReleaseRollsOutToTheWholeFleet) {
  CommandResult r = Ctl(
      {"release", "create", "--id=cf291-good",
       "--content-type=channel-file/291", std::string("--digest=") + kDigestA,
       "--size=40000", "--version=291.1", "--fetch-url=https://u.example/g"},
      kPublisherToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("created release cf291-good"));

  r = Ctl({"rollout", "start", "--release=cf291-good",
           "--plan=" + WritePlan("good", kGoodPlan), "--reason=weekly content",
           "--id=good-1", "--no-baseline"},
          kPublisherToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("started rollout good-1"));

  // No telemetry yet: not cleared.
  r = Ctl({"gate", "check", "--release=cf291-good"}, kPublisherToken);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("PENDING"));

  // CI waiting for the gate, and an operator watching, while the fleet runs.
  CommandResult wait_result, watch_result;
  std::thread ci([&] {
    wait_result = Ctl({"gate", "check", "--release=cf291-good", "--wait",
                       "--timeout=30s", "--interval=200ms"},
                      kPublisherToken);
  });
  std::thread watcher([&] {
    watch_result =
        Ctl({"rollout", "watch", "good-1", "--interval=200ms"}, kOperatorToken);
  });

  FleetEmulator fleet(Fleet("channel-file/291"));
  fleet.Start();
  EXPECT_TRUE(WaitForState("good-1", cfg::COMPLETED, absl::Seconds(20)))
      << GetRollout("good-1").DebugString();
  EXPECT_TRUE(Eventually(
      [&] {
        return fleet.Running("cf291-good") == 30 &&
               fleet.WithReason(v1::COMPLETED) == 30;
      },
      absl::Seconds(30)))
      << fleet.Running("cf291-good") << " of 30 hosts run the release, "
      << fleet.WithReason(v1::COMPLETED) << " were told it completed";
  fleet.Stop();
  ci.join();
  watcher.join();
  EXPECT_EQ(fleet.errors(), 0) << fleet.first_error();

  EXPECT_EQ(wait_result.exit_code, 0) << wait_result.out << wait_result.err;
  EXPECT_THAT(wait_result.out, HasSubstr("CLEARED"));
  EXPECT_EQ(watch_result.exit_code, 0) << watch_result.out << watch_result.err;
  EXPECT_THAT(watch_result.out, HasSubstr("rollout good-1 completed"));
  EXPECT_THAT(watch_result.out, HasSubstr("PROMOTE"));
  // Not a TTY: one line per change, not one per poll.
  EXPECT_LT(
      std::vector<std::string>(absl::StrSplit(watch_result.out, '\n')).size(),
      60u)
      << watch_result.out;

  r = Ctl({"gate", "check", "--release=cf291-good"}, kPublisherToken);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = Ctl({"gate", "check", "--release=cf291-good", "--stage=dogfood"},
          kOperatorToken);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

  // Every stage passed the gate on its own (no override), with evidence.
  const v1::GetRolloutResponse st = GetRollout("good-1");
  EXPECT_FALSE(st.rollout().overridden());
  EXPECT_EQ(st.rollout().last_decision().verdict(), cfg::PROMOTE);
  EXPECT_EQ(st.telemetry().treatment_hosts(), 30u);

  r = Ctl({"rollout", "status", "good-1", "--json"}, kOperatorToken);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"state\": \"COMPLETED\""));
}

TEST_F(E2ETest, BootLoopingReleaseIsHaltedAndAssignmentsRevert) {
  ASSERT_THAT(CreateRelease("cf292-good", "channel-file/292", kDigestA),
              GrpcOk());
  ASSERT_THAT(CreateRelease("cf292-bootloop", "channel-file/292", kDigestB),
              GrpcOk());
  AdoptBaseline("cf292-good", ParsePlan(kBootLoopPlan));
  ASSERT_THAT(StartRollout("bad-1", "cf292-bootloop", ParsePlan(kBootLoopPlan),
                           nullptr, "cf292-good"),
              GrpcOk());

  // A client of the WatchRollout stream, until the server ends it.
  std::vector<v1::GetRolloutResponse> updates;
  grpc::Status watch_status;
  std::thread watcher([&] {
    v1::WatchRolloutRequest req;
    req.set_rollout_id("bad-1");
    req.mutable_poll_interval()->set_nanos(100000000);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kOperatorToken));
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    auto reader = rollouts_->WatchRollout(&ctx, req);
    v1::GetRolloutResponse update;
    while (reader->Read(&update)) updates.push_back(update);
    watch_status = reader->Finish();
  });

  FleetOptions options = Fleet("channel-file/292");
  options.boot_loop_releases = {"cf292-bootloop"};
  FleetEmulator fleet(options);
  fleet.Start();
  EXPECT_TRUE(WaitForState("bad-1", cfg::HALTED, absl::Seconds(20)))
      << GetRollout("bad-1").DebugString();

  // Every host still alive goes back to the last known good release.
  EXPECT_TRUE(
      Eventually([&] { return fleet.WithReason(v1::ROLLED_BACK) == 25; },
                 absl::Seconds(30)))
      << fleet.WithReason(v1::ROLLED_BACK) << " hosts rolled back";
  fleet.Stop();
  watcher.join();
  EXPECT_EQ(fleet.errors(), 0) << fleet.first_error();
  // Only the dogfood stage ever got it.
  EXPECT_EQ(fleet.Dead(), 5);
  EXPECT_EQ(fleet.Running("cf292-good"), 25);

  const v1::GetRolloutResponse st = GetRollout("bad-1");
  EXPECT_EQ(st.rollout().stage(), 0u);
  const Decision& d = st.rollout().last_decision();
  EXPECT_EQ(d.verdict(), cfg::HALT);
  ASSERT_GT(d.evidence_size(), 0);
  EXPECT_EQ(d.evidence(0).rule(), "circuit_breaker");
  EXPECT_EQ(d.evidence(0).signal(), "silent");
  EXPECT_THAT(st.rollout().reason(), HasSubstr("silent"));

  // The stream showed the halt and ended by itself.
  EXPECT_THAT(watch_status, GrpcOk());
  ASSERT_THAT(updates, Not(SizeIs(0)));
  EXPECT_EQ(updates.back().rollout().state(), cfg::HALTED);
  EXPECT_GE(updates.size(), 2u);

  // A host asking now is told to run the good release.
  v1::GetAssignmentRequest req;
  req.set_host_id("host-new");
  req.add_labels("ring:dogfood");
  req.add_content_types("channel-file/292");
  v1::GetAssignmentResponse resp;
  ASSERT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &resp),
              GrpcOk());
  ASSERT_EQ(resp.assignments_size(), 1);
  EXPECT_EQ(resp.assignments(0).release_id(), "cf292-good");
  EXPECT_EQ(resp.assignments(0).digest_sha256(), kDigestA);
  EXPECT_EQ(resp.assignments(0).reason(), v1::ROLLED_BACK);
  EXPECT_EQ(resp.assignments(0).rollout_id(), "bad-1");

  CommandResult r =
      Ctl({"gate", "check", "--release=cf292-bootloop"}, kPublisherToken);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("REJECTED"));
}

TEST_F(E2ETest, RoleMatrix) {
  ASSERT_THAT(CreateRelease("cf293-a", "channel-file/293"), GrpcOk());
  ASSERT_THAT(StartRollout("roles-1", "cf293-a", ParsePlan(kManualPlan)),
              GrpcOk());
  const grpc::StatusCode kOk = grpc::StatusCode::OK;
  const grpc::StatusCode kUnauthenticated = grpc::StatusCode::UNAUTHENTICATED;
  const grpc::StatusCode kDenied = grpc::StatusCode::PERMISSION_DENIED;
  int release_counter = 0;

  using Call = std::function<grpc::Status(const std::string& token)>;
  const Call list_releases = [&](const std::string& token) {
    v1::ListReleasesResponse resp;
    return releases_->ListReleases(Ctx(token).get(), {}, &resp);
  };
  const Call create_release = [&](const std::string& token) {
    return CreateRelease(absl::StrCat("cf293-r", ++release_counter),
                         "channel-file/293", kDigestA, token);
  };
  const Call start_rollout = [&](const std::string& token) {
    v1::StartRolloutRequest req;
    req.set_release_id("cf293-a");
    *req.mutable_plan() = ParsePlan(kManualPlan);
    req.set_reason("role matrix");
    Rollout resp;
    return rollouts_->StartRollout(Ctx(token).get(), req, &resp);
  };
  const Call get_rollout = [&](const std::string& token) {
    v1::GetRolloutRequest req;
    req.set_rollout_id("roles-1");
    v1::GetRolloutResponse resp;
    return rollouts_->GetRollout(Ctx(token).get(), req, &resp);
  };
  const Call pause = [&](const std::string& token) {
    return Act("pause", "roles-1", token);
  };
  const Call check_gate = [&](const std::string& token) {
    v1::CheckGateRequest req;
    req.set_release_id("cf293-a");
    v1::CheckGateResponse resp;
    return rollouts_->CheckGate(Ctx(token).get(), req, &resp);
  };
  const Call get_assignment = [&](const std::string& token) {
    v1::GetAssignmentRequest req;
    req.set_host_id("host-1");
    req.add_content_types("channel-file/293");
    v1::GetAssignmentResponse resp;
    return fleet_->GetAssignment(Ctx(token).get(), req, &resp);
  };
  const Call report = [&](const std::string& token) {
    v1::ReportTelemetryRequest req;
    v1::TelemetryEvent* e = req.add_events();
    e->set_host_id("host-1");
    e->set_type(v1::HEARTBEAT);
    v1::ReportTelemetryResponse resp;
    return fleet_->ReportTelemetry(Ctx(token).get(), req, &resp);
  };

  struct Case {
    const char* name;
    const Call* call;
    std::string token;
    grpc::StatusCode expected;
  };
  const std::vector<Case> cases = {
      {"ListReleases without token", &list_releases, "", kUnauthenticated},
      {"ListReleases unknown token", &list_releases, "not-a-token",
       kUnauthenticated},
      {"GetAssignment unknown token", &get_assignment,
       std::string(kRelayToken) + "x", kUnauthenticated},
      {"ListReleases host", &list_releases, kRelayToken, kDenied},
      {"ListReleases publisher", &list_releases, kPublisherToken, kOk},
      {"ListReleases operator", &list_releases, kOperatorToken, kOk},
      {"CreateRelease host", &create_release, kRelayToken, kDenied},
      {"CreateRelease operator", &create_release, kOperatorToken, kDenied},
      {"CreateRelease publisher", &create_release, kPublisherToken, kOk},
      {"CreateRelease admin", &create_release, kAdminToken, kOk},
      {"StartRollout operator", &start_rollout, kOperatorToken, kDenied},
      {"StartRollout host", &start_rollout, kRelayToken, kDenied},
      {"GetRollout host", &get_rollout, kRelayToken, kDenied},
      {"GetRollout publisher", &get_rollout, kPublisherToken, kOk},
      {"GetRollout operator", &get_rollout, kOperatorToken, kOk},
      {"CheckGate host", &check_gate, kRelayToken, kDenied},
      {"CheckGate publisher", &check_gate, kPublisherToken, kOk},
      {"CheckGate operator", &check_gate, kOperatorToken, kOk},
      {"GetAssignment publisher", &get_assignment, kPublisherToken, kDenied},
      {"GetAssignment operator", &get_assignment, kOperatorToken, kDenied},
      {"GetAssignment host", &get_assignment, kRelayToken, kOk},
      {"GetAssignment admin", &get_assignment, kAdminToken, kOk},
      {"ReportTelemetry publisher", &report, kPublisherToken, kDenied},
      {"ReportTelemetry host", &report, kRelayToken, kOk},
      {"PauseRollout without token", &pause, "", kUnauthenticated},
      {"PauseRollout host", &pause, kRelayToken, kDenied},
      {"PauseRollout publisher", &pause, kPublisherToken, kDenied},
      {"PauseRollout operator", &pause, kOperatorToken, kOk},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const grpc::Status s = (*c.call)(c.token);
    EXPECT_EQ(s.error_code(), c.expected) << s.error_message();
    if (c.expected == kDenied) {
      // The message says what is needed.
      EXPECT_THAT(s.error_message(), HasSubstr("needs role"));
    }
  }

  // The audit trail names the operator's actor, not the token.
  const v1::GetRolloutResponse st = GetRollout("roles-1");
  EXPECT_EQ(st.rollout().state(), cfg::PAUSED);
  EXPECT_THAT(st.rollout().reason(), HasSubstr("paused by alice"));

  // ringctl: no token is a usage/auth error (3); the token can come from
  // RINGFENCE_TOKEN.
  CommandResult r = Ctl({"rollout", "status", "roles-1"}, "");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("UNAUTHENTICATED"));
  r = Ctl({"rollout", "resume", "roles-1", "--reason=go on"}, "",
          {absl::StrCat("RINGFENCE_TOKEN=", kOperatorToken)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Ctl({"rollout", "abort", "roles-1", "--reason=stop"}, kRelayToken);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED"));
}

TEST_F(E2ETest, InvalidPlanNamesTheField) {
  ASSERT_THAT(CreateRelease("cf294-a", "channel-file/294"), GrpcOk());
  Plan plan = ParsePlan(kManualPlan);
  plan.mutable_stages(1)->clear_bake_time();
  EXPECT_THAT(StartRollout("bad-plan", "cf294-a", plan),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                           HasSubstr("plan.stages[1].bake_time")));

  plan = ParsePlan(kManualPlan);
  plan.mutable_stages(1)->mutable_audience()->set_percent(50);
  const std::string path = WritePlan("bad", plan.Utf8DebugString());
  CommandResult r = Ctl({"rollout", "start", "--release=cf294-a",
                         "--plan=" + path, "--reason=try"},
                        kPublisherToken);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, AllOf(HasSubstr("INVALID_ARGUMENT"),
                           HasSubstr("plan.stages[1].audience.percent")));

  // A file that is not a plan at all.
  WriteFile(dir_ + "/garbage.textproto", "stages { nonsense: 1 }");
  r = Ctl({"rollout", "start", "--release=cf294-a",
           "--plan=" + dir_ + "/garbage.textproto", "--reason=try"},
          kPublisherToken);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("nonsense"));

  // Usage errors exit 3.
  r = Ctl({"rollout", "start", "--release=cf294-a"}, kPublisherToken);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("missing --plan"));
}

TEST_F(E2ETest, UnknownIdsAreNotFound) {
  v1::GetRolloutRequest req;
  req.set_rollout_id("no-such-rollout");
  v1::GetRolloutResponse resp;
  EXPECT_THAT(
      rollouts_->GetRollout(Ctx(kOperatorToken).get(), req, &resp),
      GrpcStatusIs(grpc::StatusCode::NOT_FOUND, HasSubstr("no-such-rollout")));
  EXPECT_THAT(
      Act("pause", "no-such-rollout", kOperatorToken),
      GrpcStatusIs(grpc::StatusCode::NOT_FOUND, HasSubstr("no-such-rollout")));
  v1::GetReleaseRequest rreq;
  rreq.set_release_id("no-such-release");
  Release release;
  EXPECT_THAT(
      releases_->GetRelease(Ctx(kOperatorToken).get(), rreq, &release),
      GrpcStatusIs(grpc::StatusCode::NOT_FOUND, HasSubstr("no-such-release")));

  CommandResult r = Ctl({"rollout", "status", "no-such-rollout"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
  r = Ctl({"gate", "check", "--release=no-such-release"});
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(E2ETest, MalformedRequestsAreRejectedWithTheField) {
  v1::ReportTelemetryResponse resp;
  {
    v1::ReportTelemetryRequest req;
    req.add_events()->set_host_id("h1");
    req.mutable_events(0)->set_type(v1::HEARTBEAT);
    req.add_events()->set_type(v1::HEARTBEAT);
    EXPECT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                             HasSubstr("events[1].host_id")));
  }
  {
    v1::ReportTelemetryRequest req;
    req.add_events()->set_host_id("h1");
    EXPECT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                             HasSubstr("events[0].type")));
  }
  {
    v1::ReportTelemetryRequest req;
    v1::TelemetryEvent* e = req.add_events();
    e->set_host_id("h1");
    e->set_type(v1::APPLIED);
    EXPECT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                             HasSubstr("events[0].release_id")));
  }
  {
    // Over --max_batch_events=1000.
    v1::ReportTelemetryRequest req;
    for (int i = 0; i < 1001; ++i) {
      v1::TelemetryEvent* e = req.add_events();
      e->set_host_id(absl::StrCat("h", i));
      e->set_type(v1::HEARTBEAT);
    }
    EXPECT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                             HasSubstr("at most 1000")));
    req.mutable_events()->RemoveLast();
    EXPECT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp),
                GrpcOk());
    EXPECT_EQ(resp.accepted_events(), 1000u);
    // The server reuses request messages: nothing of a bigger batch before
    // may leak into a smaller one.
    req.mutable_events()->DeleteSubrange(1, 999);
    EXPECT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp),
                GrpcOk());
    EXPECT_EQ(resp.accepted_events(), 1u);
  }
  v1::GetAssignmentResponse aresp;
  {
    v1::GetAssignmentRequest req;
    req.set_host_id("h1");
    EXPECT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &aresp),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                             HasSubstr("content_types")));
  }
  {
    v1::GetAssignmentRequest req;
    req.set_host_id("h1");
    req.add_labels("bad label");
    req.add_content_types("channel-file/291");
    EXPECT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &aresp),
                GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                             HasSubstr("labels[0]")));
  }
  {
    // Nothing released yet: keep what you run.
    v1::GetAssignmentRequest req;
    req.set_host_id("h1");
    req.add_content_types("channel-file/999");
    ASSERT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &aresp),
                GrpcOk());
    ASSERT_EQ(aresp.assignments_size(), 1);
    EXPECT_FALSE(aresp.assignments(0).has_release());
    EXPECT_EQ(aresp.assignments(0).reason(), v1::NO_RELEASE);
  }
  EXPECT_THAT(CreateRelease("bad id!", "channel-file/291"),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                           HasSubstr("release.id")));
}

TEST_F(E2ETest, GateCheckExitCodes) {
  ASSERT_THAT(CreateRelease("cf295-a", "channel-file/295"), GrpcOk());
  ASSERT_THAT(StartRollout("gate-1", "cf295-a", ParsePlan(kManualPlan)),
              GrpcOk());
  CommandResult r = Ctl({"gate", "check", "--release=cf295-a"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const absl::Time start = absl::Now();
  r = Ctl({"gate", "check", "--release=cf295-a", "--wait", "--timeout=500ms",
           "--interval=100ms"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(450));
  r = Ctl({"gate", "check", "--release=cf295-a", "--stage=no-such-stage"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("no-such-stage"));

  // An operator promotes past dogfood: cleared for "fleet", not yet for all.
  r = Ctl({"rollout", "promote", "gate-1", "--reason=dogfood looks fine"},
          kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Ctl({"gate", "check", "--release=cf295-a", "--stage=fleet"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("CLEARED"));
  r = Ctl({"gate", "check", "--release=cf295-a"});
  EXPECT_EQ(r.exit_code, 1);

  r = Ctl({"rollout", "abort", "gate-1", "--reason=changed our mind"},
          kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Ctl({"gate", "check", "--release=cf295-a", "--json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("GATE_REJECTED"));
  EXPECT_THAT(r.out, HasSubstr("changed our mind"));

  // Acting on a finished rollout names its state.
  r = Ctl({"rollout", "pause", "gate-1", "--reason=too late"}, kOperatorToken);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err,
              AllOf(HasSubstr("FAILED_PRECONDITION"), HasSubstr("aborted")));

  r = Ctl({"gate", "check"});
  EXPECT_EQ(r.exit_code, 3);
}

TEST_F(E2ETest, KilledServerRestartsWithTheRolloutState) {
  ASSERT_THAT(CreateRelease("cf296-a", "channel-file/296"), GrpcOk());
  ASSERT_THAT(StartRollout("restart-1", "cf296-a", ParsePlan(kManualPlan)),
              GrpcOk());
  ASSERT_THAT(Act("promote", "restart-1", kOperatorToken), GrpcOk());
  Rollout before;
  ASSERT_THAT(Act("pause", "restart-1", kOperatorToken, &before), GrpcOk());

  server_->Signal(SIGKILL);
  EXPECT_EQ(server_->Wait(absl::Seconds(10)), 128 + SIGKILL);
  StartServer();

  const v1::GetRolloutResponse st = GetRollout("restart-1");
  EXPECT_EQ(st.rollout().state(), cfg::PAUSED);
  EXPECT_EQ(st.rollout().stage(), 1u);
  EXPECT_EQ(st.rollout().version(), before.version());
  EXPECT_THAT(st.rollout().reason(), HasSubstr("paused by alice"));
  v1::ListReleasesResponse releases;
  ASSERT_THAT(releases_->ListReleases(Ctx(kOperatorToken).get(), {}, &releases),
              GrpcOk());
  ASSERT_EQ(releases.releases_size(), 1);
  EXPECT_EQ(releases.releases(0).id(), "cf296-a");

  // And it goes on from there.
  Rollout after;
  ASSERT_THAT(Act("resume", "restart-1", kOperatorToken, &after), GrpcOk());
  EXPECT_EQ(after.state(), cfg::RUNNING);
  EXPECT_EQ(after.version(), before.version() + 1);
}

// The services grpc.reflection.v1alpha lists over `channel` (a
// ServerReflectionResponse, serialized), called without a token; "" if the
// call fails.
std::string ReflectionListServices(
    const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](int expected) {
    return cq.Next(&tag, &ok) && tag == reinterpret_cast<void*>(expected) && ok;
  };
  std::string out;
  call->StartCall(reinterpret_cast<void*>(1));
  if (step(1)) {
    // ServerReflectionRequest{list_services: ""}: field 7, length 0.
    grpc::Slice request(std::string("\x3a\x00", 2));
    call->Write(grpc::ByteBuffer(&request, 1), reinterpret_cast<void*>(2));
    grpc::ByteBuffer response;
    if (step(2)) {
      call->Read(&response, reinterpret_cast<void*>(3));
      if (step(3)) {
        std::vector<grpc::Slice> slices;
        if (response.Dump(&slices).ok()) {
          for (const grpc::Slice& s : slices) {
            out.append(reinterpret_cast<const char*>(s.begin()), s.size());
          }
        }
      }
    }
  }
  ctx.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  while (cq.Next(&tag, &ok) && tag != reinterpret_cast<void*>(4)) {
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return out;
}

// Without a tokens file every caller is admin: served on loopback, refused
// elsewhere unless --insecure_no_auth says so. Health and reflection need
// no token even with a tokens file; every ringfence.v1 method does.
TEST_F(E2ETest, NoTokensServeLoopbackOnlyUnlessInsecureNoAuth) {
  // Tokens: reflection (and health) answer without one, the API does not.
  EXPECT_THAT(ReflectionListServices(channel_),
              HasSubstr("ringfence.v1.Releases"));
  EXPECT_EQ(HealthStatus(""), 1);
  v1::ListReleasesResponse list;
  EXPECT_THAT(releases_->ListReleases(Ctx("").get(), {}, &list),
              GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED, testing::_));

  server_.reset();
  for (const char* listen : {"--listen=0.0.0.0:0", "--listen=[::]:0"}) {
    const CommandResult refused = RunServerToExit({listen});
    EXPECT_EQ(refused.exit_code, 2) << listen;
    EXPECT_THAT(refused.err,
                AllOf(HasSubstr("is not a loopback address"),
                      HasSubstr("--auth_tokens_file"), HasSubstr("--client_ca"),
                      HasSubstr("--insecure_no_auth")))
        << listen;
  }

  with_tokens_ = false;
  StartServer();  // 127.0.0.1
  EXPECT_THAT(ReadFile(LogPath(starts_)),
              HasSubstr("WARNING: no --auth_tokens_file"));
  EXPECT_THAT(releases_->ListReleases(Ctx("").get(), {}, &list), GrpcOk());
  EXPECT_THAT(CreateRelease("cf298-a", "channel-file/298", kDigestA, ""),
              GrpcOk());

  StartServer({"--listen=0.0.0.0:0", "--insecure_no_auth"});
  EXPECT_THAT(ReadFile(LogPath(starts_)),
              HasSubstr("WARNING: --insecure_no_auth: authentication is OFF"));
  EXPECT_THAT(releases_->ListReleases(Ctx("").get(), {}, &list), GrpcOk());
  EXPECT_THAT(list.releases(), SizeIs(1));

  with_tokens_ = true;
  StartServer({"--listen=0.0.0.0:0"});
  EXPECT_THAT(releases_->ListReleases(Ctx("").get(), {}, &list),
              GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED, testing::_));
  EXPECT_THAT(releases_->ListReleases(Ctx(kOperatorToken).get(), {}, &list),
              GrpcOk());
}

TEST_F(E2ETest, HealthCheckAndGracefulShutdown) {
  // grpc.health.v1: the server and each service; unknown services are
  // NOT_FOUND.
  EXPECT_EQ(HealthStatus(""), 1);
  EXPECT_EQ(HealthStatus("ringfence.v1.Releases"), 1);
  EXPECT_EQ(HealthStatus("ringfence.v1.Rollouts"), 1);
  EXPECT_EQ(HealthStatus("ringfence.v1.Fleet"), 1);
  EXPECT_EQ(HealthStatus("ringfence.v1.NoSuchService"),
            -static_cast<int>(grpc::StatusCode::NOT_FOUND));

  // An open WatchRollout stream ends (UNAVAILABLE) when the server shuts
  // down; it does not hold the shutdown up for the grace period.
  StartServer({"--shutdown_grace=20s"});  // replaces (and kills) the first
  ASSERT_THAT(CreateRelease("cf297-a", "channel-file/297"), GrpcOk());
  ASSERT_THAT(StartRollout("shutdown-1", "cf297-a", ParsePlan(kManualPlan)),
              GrpcOk());
  grpc::ClientContext watch_ctx;
  watch_ctx.AddMetadata("authorization",
                        absl::StrCat("Bearer ", kOperatorToken));
  v1::WatchRolloutRequest req;
  req.set_rollout_id("shutdown-1");
  auto reader = rollouts_->WatchRollout(&watch_ctx, req);
  v1::GetRolloutResponse first;
  ASSERT_TRUE(reader->Read(&first));
  EXPECT_EQ(first.rollout().state(), cfg::RUNNING);
  // The client keeps reading, as a watcher does (a client that does not
  // read does not see the server's GOAWAY until gRPC's 5s backup poll, and
  // the server's shutdown waits for it).
  grpc::Status watch_status;
  std::thread watcher([&] {
    v1::GetRolloutResponse update;
    while (reader->Read(&update)) {
    }
    watch_status = reader->Finish();
  });

  server_->Signal(SIGTERM);
  const absl::Time start = absl::Now();
  EXPECT_EQ(server_->Wait(absl::Seconds(15)), 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  watcher.join();
  EXPECT_THAT(watch_status, GrpcStatusIs(grpc::StatusCode::UNAVAILABLE,
                                         HasSubstr("shutting down")));
  EXPECT_THAT(ReadFile(LogPath(starts_)), HasSubstr("stopped"));
}

}  // namespace
}  // namespace ringfence::e2e
