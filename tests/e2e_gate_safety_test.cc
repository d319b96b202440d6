// End-to-end tests of the gate-safety cases through the real ringfenced
// (gRPC) and ringctl: crash evidence and a halt survive kill -9 (case 12),
// the first release of a content type needs --no-baseline and its halt
// unloads (17), a vouched baseline is noted and not pushed (18), a promote
// cannot overtake a tripped breaker (19), and bad signal names are refused
// (K9). The library-level tests of the same cases are in
// gate_safety_test.cc.
#include <csignal>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "e2e_fixture.h"
#include "ringfence/model.h"

namespace ringfence::e2e {
namespace {

using ::testing::AnyOf;

// Dogfood breakers at 3 hosts (crash, unclean_reboot, silent, apply_stuck)
// and a 10-minute bake, then everyone: the gate never promotes on its own
// during a test.
Plan BreakerPlan() {
  Plan plan;
  EXPECT_TRUE(ringfence::LoadMessageFile(
                  RINGFENCE_TESTDATA_DIR "/plans/breakers.textproto", &plan)
                  .ok());
  return plan;
}

class E2EGateSafetyTest : public E2ETest {
 protected:
  // kill -9 of ringfenced, and a restart on the same data dir.
  void KillAndRestartServer() {
    server_->Signal(SIGKILL);
    ASSERT_EQ(server_->Wait(absl::Seconds(10)), 128 + SIGKILL);
    StartServer();
  }

  std::unique_ptr<FleetEmulator> StartFleet(const std::string& content_type,
                                            int hosts, int dogfood) {
    FleetOptions o = Fleet(content_type);
    o.hosts = hosts;
    o.dogfood_hosts = dogfood;
    auto fleet = std::make_unique<FleetEmulator>(o);
    fleet->Start();
    return fleet;
  }

  // Reports one event of `type` from each of `hosts`.
  grpc::Status Report(const std::vector<std::string>& hosts, v1::EventType type,
                      const std::string& signal = "") {
    v1::ReportTelemetryRequest req;
    for (const std::string& host : hosts) {
      v1::TelemetryEvent* e = req.add_events();
      e->set_host_id(host);
      e->set_type(type);
      e->set_signal(signal);
    }
    v1::ReportTelemetryResponse resp;
    return fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp);
  }

  v1::ContentAssignment Assign(const std::string& host,
                               const std::string& content_type, bool dogfood) {
    v1::GetAssignmentRequest req;
    req.set_host_id(host);
    if (dogfood) req.add_labels("ring:dogfood");
    req.set_agent_version("7.11.0");
    req.set_platform("windows");
    req.add_content_types(content_type);
    v1::GetAssignmentResponse resp;
    EXPECT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &resp),
                GrpcOk());
    return resp.assignments_size() == 1 ? resp.assignments(0)
                                        : v1::ContentAssignment();
  }

  // Hosts of `stage`'s cohort that showed `signal` after their exposure.
  uint64_t CohortAffected(const std::string& id, int stage,
                          const std::string& signal) {
    const v1::GetRolloutResponse r = GetRollout(id);
    if (stage >= r.telemetry().cohorts_size()) return 0;
    const auto& affected = r.telemetry().cohorts(stage).affected_hosts();
    auto it = affected.find(signal);
    return it == affected.end() ? 0 : it->second;
  }
};

// Case 12 with kill -9: 2 crashed canaries are checkpointed, the server is
// killed and restarted on the same data dir, a crash of an already counted
// canary changes nothing, a 3rd canary's crash trips the 3-host breaker;
// the halt survives another kill -9, and every host, also one never seen,
// is told the baseline.
TEST_F(E2EGateSafetyTest, Case12KilledServerKeepsCrashEvidenceAndTheHalt) {
  const std::string type = "channel-file/412";
  ASSERT_THAT(CreateRelease("cf412-v1", type, kDigestA), GrpcOk());
  ASSERT_THAT(CreateRelease("cf412-v2", type, kDigestB), GrpcOk());
  ASSERT_THAT(StartRollout("restart-12", "cf412-v2", BreakerPlan(), nullptr,
                           "cf412-v1"),
              GrpcOk());
  auto fleet = StartFleet(type, 26, 6);
  ASSERT_TRUE(Eventually([&] { return fleet->Running("cf412-v2") == 6; },
                         absl::Seconds(10)))
      << fleet->Running("cf412-v2") << " " << fleet->first_error();

  ASSERT_THAT(Report({"host-000", "host-001"}, v1::CRASH), GrpcOk());
  ASSERT_TRUE(
      Eventually([&] { return CohortAffected("restart-12", 0, "crash") == 2; },
                 absl::Seconds(5)));
  absl::SleepFor(absl::Milliseconds(2500));  // checkpoints every second
  ASSERT_EQ(GetRollout("restart-12").rollout().state(), cfg::RUNNING);

  fleet->Stop();
  KillAndRestartServer();
  fleet = StartFleet(type, 26, 6);
  EXPECT_EQ(GetRollout("restart-12").rollout().state(), cfg::RUNNING);
  EXPECT_EQ(CohortAffected("restart-12", 0, "crash"), 2u);

  // A counted canary crashes again: still 2, still running.
  ASSERT_THAT(Report({"host-000"}, v1::CRASH), GrpcOk());
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(CohortAffected("restart-12", 0, "crash"), 2u);
  EXPECT_EQ(GetRollout("restart-12").rollout().state(), cfg::RUNNING);

  ASSERT_THAT(Report({"host-002"}, v1::CRASH), GrpcOk());
  ASSERT_TRUE(WaitForState("restart-12", cfg::HALTED, absl::Seconds(10)))
      << GetRollout("restart-12").DebugString();
  const Decision d = GetRollout("restart-12").rollout().last_decision();
  EXPECT_EQ(d.verdict(), cfg::HALT);
  ASSERT_GT(d.evidence_size(), 0);
  EXPECT_EQ(d.evidence(0).rule(), "circuit_breaker");
  EXPECT_EQ(d.evidence(0).signal(), "crash");
  EXPECT_EQ(d.evidence(0).affected_hosts(), 3u);

  fleet->Stop();
  KillAndRestartServer();
  EXPECT_EQ(GetRollout("restart-12").rollout().state(), cfg::HALTED);
  for (const auto& [host, dogfood] :
       std::vector<std::pair<std::string, bool>>{{"host-000", true},
                                                 {"host-020", false},
                                                 {"stranger-1", true},
                                                 {"stranger-2", false}}) {
    const v1::ContentAssignment a = Assign(host, type, dogfood);
    EXPECT_TRUE(a.has_release()) << host;
    EXPECT_EQ(a.release_id(), "cf412-v1") << host;
    EXPECT_EQ(a.reason(), v1::ROLLED_BACK) << host;
    EXPECT_FALSE(a.unload()) << host;
  }
  fleet = StartFleet(type, 26, 6);
  EXPECT_TRUE(Eventually([&] { return fleet->Running("cf412-v1") == 26; },
                         absl::Seconds(10)))
      << fleet->Running("cf412-v1");
  fleet->Stop();
  EXPECT_EQ(fleet->errors(), 0) << fleet->first_error();
}

// An acknowledged event survives a kill -9 right after its acknowledgement
// (with --ack_telemetry_after_checkpoint ringfenced answers a batch once it
// is in a committed checkpoint): a
// crash the server said OK to is never lost, whenever the server dies.
TEST_F(E2EGateSafetyTest, AcknowledgedCrashSurvivesAKillRightAfterTheAck) {
  server_flags_ = {"--ack_telemetry_after_checkpoint"};
  StartServer();
  const std::string type = "channel-file/413";
  ASSERT_THAT(CreateRelease("cf413-v1", type, kDigestA), GrpcOk());
  ASSERT_THAT(CreateRelease("cf413-v2", type, kDigestB), GrpcOk());
  ASSERT_THAT(
      StartRollout("ack-13", "cf413-v2", BreakerPlan(), nullptr, "cf413-v1"),
      GrpcOk());
  auto fleet = StartFleet(type, 26, 6);
  ASSERT_TRUE(Eventually([&] { return fleet->Running("cf413-v2") == 6; },
                         absl::Seconds(10)))
      << fleet->Running("cf413-v2") << " " << fleet->first_error();
  fleet->Stop();
  for (int round = 0; round < 2; ++round) {
    const std::string host = absl::StrCat("host-00", round);
    ASSERT_THAT(Report({host}, v1::CRASH), GrpcOk());
    KillAndRestartServer();  // at once: no time for a scheduled checkpoint
    EXPECT_EQ(CohortAffected("ack-13", 0, "crash"),
              static_cast<uint64_t>(round + 1))
        << "round " << round;
  }
  EXPECT_EQ(GetRollout("ack-13").rollout().state(), cfg::RUNNING);
}

// Case 17: ringctl refuses to start the first release of a content type
// without --no-baseline, naming baseline_release_id; with it, it notes that
// a halt unloads. After the halt, every host is told to unload.
TEST_F(E2EGateSafetyTest, Case17FirstReleaseNeedsNoBaselineAndItsHaltUnloads) {
  const std::string type = "channel-file/417";
  ASSERT_THAT(CreateRelease("cf417-v1", type), GrpcOk());
  const std::string plan = RINGFENCE_TESTDATA_DIR "/plans/breakers.textproto";
  CommandResult r =
      Ctl({"rollout", "start", "--id=first-17", "--release=cf417-v1",
           "--plan=" + plan, "--reason=first release of a new content type"},
          kPublisherToken);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_THAT(r.err, AllOf(HasSubstr("FAILED_PRECONDITION"),
                           HasSubstr("baseline_release_id: no release of "
                                     "channel-file/417 completed a rollout"),
                           HasSubstr("--no-baseline")));
  v1::ListRolloutsResponse listed;
  ASSERT_THAT(rollouts_->ListRollouts(Ctx(kOperatorToken).get(), {}, &listed),
              GrpcOk());
  EXPECT_EQ(listed.rollouts_size(), 0);

  r = Ctl({"rollout", "start", "--id=first-17", "--release=cf417-v1",
           "--plan=" + plan, "--reason=first release of a new content type",
           "--no-baseline"},
          kPublisherToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out,
              HasSubstr("note: no baseline: if this rollout is halted or "
                        "aborted, every host is told to unload "
                        "channel-file/417"));

  auto fleet = StartFleet(type, 30, 5);
  ASSERT_TRUE(Eventually([&] { return fleet->Running("cf417-v1") == 5; },
                         absl::Seconds(10)))
      << fleet->Running("cf417-v1") << " " << fleet->first_error();
  ASSERT_THAT(Report({"host-000", "host-001", "host-002"}, v1::CRASH),
              GrpcOk());
  ASSERT_TRUE(WaitForState("first-17", cfg::HALTED, absl::Seconds(10)));

  for (const auto& [host, dogfood] :
       std::vector<std::pair<std::string, bool>>{{"host-000", true},
                                                 {"host-004", true},
                                                 {"host-020", false},
                                                 {"stranger-1", false}}) {
    const v1::ContentAssignment a = Assign(host, type, dogfood);
    EXPECT_TRUE(a.unload()) << host;
    EXPECT_FALSE(a.has_release()) << host;
    EXPECT_EQ(a.release_id(), "") << host;
    EXPECT_EQ(a.reason(), v1::ROLLED_BACK) << host;
  }
  EXPECT_TRUE(Eventually([&] { return fleet->Running("cf417-v1") == 0; },
                         absl::Seconds(10)))
      << fleet->Running("cf417-v1");
  fleet->Stop();
  EXPECT_EQ(fleet->errors(), 0) << fleet->first_error();
}

// Case 18: a never-rolled-out baseline, while nothing of the content type
// completed, is accepted as vouched for (ringctl says so) and pushed to no
// host outside the rollout; an abort then tells every host to run it. Once
// a release completed, such a baseline is refused.
TEST_F(E2EGateSafetyTest, Case18VouchedBaselineIsNotPushedUntilARollback) {
  const std::string type = "channel-file/418";
  ASSERT_THAT(CreateRelease("cf418-v2", type, kDigestA), GrpcOk());
  ASSERT_THAT(CreateRelease("cf418-v9-hotfix", type, kDigestB), GrpcOk());
  const std::string plan = RINGFENCE_TESTDATA_DIR "/plans/breakers.textproto";
  CommandResult r =
      Ctl({"rollout", "start", "--id=vouched-18", "--release=cf418-v2",
           "--plan=" + plan, "--baseline=cf418-v9-hotfix",
           "--reason=weekly content"},
          kPublisherToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("note: baseline cf418-v9-hotfix never "
                               "completed a rollout (vouched for)"));
  EXPECT_TRUE(GetRollout("vouched-18").rollout().baseline_vouched());

  auto fleet = StartFleet(type, 30, 5);
  ASSERT_TRUE(Eventually(
      [&] {
        return fleet->Running("cf418-v2") == 5 &&
               fleet->WithReason(v1::NOT_YET) == 25;
      },
      absl::Seconds(10)))
      << fleet->Running("cf418-v2") << " " << fleet->WithReason(v1::NOT_YET);
  EXPECT_EQ(fleet->Running("cf418-v9-hotfix"), 0);

  ASSERT_THAT(Act("abort", "vouched-18", kOperatorToken), GrpcOk());
  EXPECT_TRUE(
      Eventually([&] { return fleet->Running("cf418-v9-hotfix") == 30; },
                 absl::Seconds(10)))
      << fleet->Running("cf418-v9-hotfix");
  fleet->Stop();

  // Once a release of the type completed, an unproven baseline is refused.
  ASSERT_THAT(CreateRelease("cf418-v3", type, kDigestA), GrpcOk());
  ASSERT_THAT(CreateRelease("cf418-v4", type, kDigestB), GrpcOk());
  AdoptBaseline("cf418-v3", BreakerPlan());
  EXPECT_THAT(StartRollout("vouched-18b", "cf418-v4", BreakerPlan(), nullptr,
                           "cf418-v9-hotfix"),
              GrpcStatusIs(grpc::StatusCode::FAILED_PRECONDITION,
                           AllOf(HasSubstr("baseline_release_id"),
                                 HasSubstr("never completed a rollout"))));
}

// Case 19: crashes reported (the RPC returned) and then an immediate
// promote out of the late-track stage: refused, and the rollout is HALTED,
// never COMPLETED.
TEST_F(E2EGateSafetyTest, Case19PromoteCannotOvertakeATrippedBreaker) {
  const std::string type = "channel-file/419";
  ASSERT_THAT(CreateRelease("cf419-v1", type, kDigestA), GrpcOk());
  ASSERT_THAT(CreateRelease("cf419-v2", type, kDigestB), GrpcOk());
  ASSERT_THAT(
      StartRollout("race-19", "cf419-v2", BreakerPlan(), nullptr, "cf419-v1"),
      GrpcOk());
  auto fleet = StartFleet(type, 10, 4);
  ASSERT_TRUE(Eventually([&] { return fleet->Running("cf419-v2") == 4; },
                         absl::Seconds(10)));
  ASSERT_THAT(Act("promote", "race-19", kOperatorToken), GrpcOk());
  Rollout late;
  ASSERT_THAT(Act("promote", "race-19", kOperatorToken, &late), GrpcOk());
  ASSERT_EQ(late.stage(), 2u);  // late track

  ASSERT_THAT(Report({"host-000", "host-001", "host-002"}, v1::CRASH),
              GrpcOk());
  const CommandResult r =
      Ctl({"rollout", "promote", "race-19", "--reason=ship to everyone"},
          kOperatorToken);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  // Refused by the halt rules under the promote's lock, or (if a gate tick
  // came first) because the rollout is already halted.
  EXPECT_THAT(r.err, AllOf(HasSubstr("FAILED_PRECONDITION"),
                           AnyOf(HasSubstr("promote refused"),
                                 HasSubstr("it is halted"))));
  const v1::GetRolloutResponse st = GetRollout("race-19");
  EXPECT_EQ(st.rollout().state(), cfg::HALTED);
  EXPECT_THAT(st.rollout().reason(), HasSubstr("circuit breaker"));
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(GetRollout("race-19").rollout().state(), cfg::HALTED);
  fleet->Stop();
}

// K9: a signal event named outside [a-z0-9_]{1,64} is refused with its whole
// batch, naming the event's field.
TEST_F(E2EGateSafetyTest, K9BadSignalNameIsRefused) {
  const std::string type = "channel-file/409";
  ASSERT_THAT(CreateRelease("cf409-v1", type), GrpcOk());
  ASSERT_THAT(StartRollout("k9", "cf409-v1", BreakerPlan()), GrpcOk());
  CheckIn("host-000", type);
  CheckIn("host-001", type);
  v1::ReportTelemetryRequest req;
  v1::TelemetryEvent* ok = req.add_events();
  ok->set_host_id("host-000");
  ok->set_type(v1::HEARTBEAT);
  v1::TelemetryEvent* bad = req.add_events();
  bad->set_host_id("host-001");
  bad->set_type(v1::SIGNAL);
  bad->set_signal("Bad-Name");
  v1::ReportTelemetryResponse resp;
  EXPECT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                           HasSubstr("events[1].signal")));
  EXPECT_EQ(GetRollout("k9").telemetry().tracked_hosts(), 0u);
  bad->set_signal("disk_smart_warning");
  EXPECT_THAT(fleet_->ReportTelemetry(Ctx(kRelayToken).get(), req, &resp),
              GrpcOk());
  const v1::RolloutTelemetry t = GetRollout("k9").telemetry();
  EXPECT_EQ(t.tracked_hosts(), 2u);
  // No rule watches it: counted, and visible in the status.
  ASSERT_EQ(t.unwatched_signals().count("disk_smart_warning"), 1u);
  EXPECT_EQ(t.unwatched_signals().at("disk_smart_warning"), 1u);
  CommandResult r = Ctl({"rollout", "status", "k9"}, kOperatorToken);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("unwatched  disk_smart_warning 1"));
}

}  // namespace
}  // namespace ringfence::e2e
