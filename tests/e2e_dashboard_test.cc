// The dashboard in a real browser: ringfenced with --http_listen and tokens,
// a rollout halted by its gate (a boot-looping release on an emulated
// fleet) and a running one; then tests/browser/dashboard_test.py drives
// headless Chromium through the page (token, the halt's evidence, pause
// with a reason), and the pause is checked over gRPC.
//
// The screenshot goes to $RINGFENCE_ARTIFACTS_DIR if set (CI keeps that
// directory), else to the test's temporary directory.
#include <httplib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "e2e_fixture.h"
#include "service/status_map.h"

namespace ringfence::e2e {
namespace {

class E2EDashboardBrowserTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    if (HasFatalFailure()) return;
    // The two-person rule guards promotes of ct/dash-ok.
    WriteFile(dir_ + "/fleet.textproto", R"pb(
      approval_rules { content_type: "ct/dash-ok" actions: GUARDED_PROMOTE }
    )pb");
    server_flags_ = {"--fleet_config=" + dir_ + "/fleet.textproto",
                     "--http_listen=127.0.0.1:0",
                     "--http_port_file=" + dir_ + "/http_port"};
    StartServer();
  }
};

TEST_F(E2EDashboardBrowserTest, OperatorSeesTheHaltAndPausesARollout) {
  // A rollout the gate halts: its dogfood hosts die loading the release.
  ASSERT_THAT(CreateRelease("dash-bad", "ct/dash-bad", kDigestB), GrpcOk());
  ASSERT_THAT(StartRollout("dash-halted", "dash-bad", ParsePlan(kBootLoopPlan)),
              GrpcOk());
  FleetOptions options = Fleet("ct/dash-bad");
  options.boot_loop_releases = {"dash-bad"};
  FleetEmulator fleet(options);
  fleet.Start();
  ASSERT_TRUE(WaitForState("dash-halted", cfg::HALTED, absl::Seconds(30)))
      << GetRollout("dash-halted").DebugString();
  fleet.Stop();
  const Decision halt = GetRollout("dash-halted").rollout().last_decision();
  ASSERT_EQ(halt.verdict(), cfg::HALT);
  ASSERT_GT(halt.evidence_size(), 0);
  ASSERT_FALSE(halt.evidence(0).explanation().empty());
  // And one still running, left alone by the gate.
  ASSERT_THAT(CreateRelease("dash-ok", "ct/dash-ok"), GrpcOk());
  ASSERT_THAT(StartRollout("dash-running", "dash-ok", ParsePlan(kManualPlan)),
              GrpcOk());

  // A promote of it held for a second principal (alice asked).
  const grpc::Status held = Act("promote", "dash-running", kOperatorToken);
  const std::optional<cfg::ApprovalRequest> request =
      ApprovalRequestFromStatus(held);
  ASSERT_TRUE(request.has_value()) << held.error_message();

  const std::string artifacts = Env("RINGFENCE_ARTIFACTS_DIR");
  const std::string shots = artifacts.empty() ? dir_ : artifacts;
  std::filesystem::create_directories(shots);
  // Markup in a reason must show as the text it is (the page never parses
  // server data as HTML).
  const std::string reason =
      "browser test: <b>holding</b> for ticket <img src=x> 77";
  // The script fails (never skips) if Chromium, chromedriver or selenium
  // is missing.
  const CommandResult r =
      RunCommand({"/usr/bin/python3",
                  RINGFENCE_BROWSER_TEST,
                  "--url",
                  absl::StrCat("http://127.0.0.1:", HttpPort()),
                  "--token",
                  kOperatorToken,
                  "--halted",
                  "dash-halted",
                  "--expect-evidence",
                  halt.evidence(0).explanation(),
                  "--running",
                  "dash-running",
                  "--reason",
                  reason,
                  "--reader-token",
                  kPublisherToken,
                  "--approval",
                  request->id(),
                  "--approver-token",
                  kAdminToken,
                  "--screenshot",
                  shots + "/dashboard.png"},
                 {}, absl::Seconds(90));
  EXPECT_EQ(r.exit_code, 0) << "stdout:\n" << r.out << "\nstderr:\n" << r.err;
  EXPECT_TRUE(std::filesystem::exists(shots + "/dashboard.png"));
  // The publisher's resume was refused in the page, with the server's 403.
  EXPECT_THAT(r.out, AllOf(HasSubstr("reader token refused: 403"),
                           HasSubstr("ResumeRollout")))
      << r.out;
  EXPECT_THAT(r.out, AllOf(HasSubstr("requester refused: 403"),
                           HasSubstr("second principal approved")))
      << r.out;

  // What the browser did, seen over gRPC: paused by the token's actor, and
  // promoted with root's approval.
  const v1::GetRolloutResponse st = GetRollout("dash-running");
  EXPECT_EQ(st.rollout().state(), config::v1::PAUSED);
  EXPECT_THAT(st.rollout().reason(), HasSubstr(reason));
  v1::ListAuditRequest req;
  req.set_rollout_id("dash-running");
  v1::ListAuditResponse audit;
  ASSERT_THAT(rollouts_->ListAudit(Ctx(kOperatorToken).get(), req, &audit),
              GrpcOk());
  ASSERT_GE(audit.entries_size(), 4);
  // start, approval_requested, pause, then the approved promote.
  const cfg::AuditEntry& pause = audit.entries(audit.entries_size() - 2);
  EXPECT_EQ(pause.action(), "pause");
  EXPECT_EQ(pause.actor(), "alice");
  EXPECT_EQ(pause.reason(), reason);
  const cfg::AuditEntry& promote = audit.entries(audit.entries_size() - 1);
  EXPECT_EQ(promote.action(), "promote");
  EXPECT_EQ(promote.actor(), "alice");
  EXPECT_EQ(promote.approved_by(), "root");
  EXPECT_EQ(promote.approval_request_id(), request->id());
  EXPECT_EQ(st.rollout().stage(), 1u);
  // The halted rollout was only looked at.
  EXPECT_EQ(GetRollout("dash-halted").rollout().state(), config::v1::HALTED);
}

}  // namespace
}  // namespace ringfence::e2e
