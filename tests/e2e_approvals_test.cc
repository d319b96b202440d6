// The two-person rule on the real ringfenced (--fleet_config with
// approval_rules), over gRPC with ringctl and over HTTP with a real HTTP
// client: a guarded action is held, its requester cannot approve it, a
// second principal can, and the audit log keeps both.
#include <httplib.h>

#include <regex>
#include <string>
#include <vector>

#include "e2e_fixture.h"
#include "google/protobuf/util/json_util.h"

namespace ringfence::e2e {
namespace {

// alice is an operator, root an admin: two principals who may act.
class E2EApprovalsTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    if (HasFatalFailure()) return;
    WriteFile(dir_ + "/fleet.textproto", R"pb(
      approval_rules {
        content_type: "channel-file/350"
        actions: [ GUARDED_PROMOTE, GUARDED_CLEAR_EMERGENCY_STOP ]
        window { seconds: 600 }
      }
    )pb");
    server_flags_ = {"--fleet_config=" + dir_ + "/fleet.textproto",
                     "--http_listen=127.0.0.1:0",
                     "--http_port_file=" + dir_ + "/http_port"};
    StartServer();
    ASSERT_THAT(CreateRelease("cf350-a", "channel-file/350"), GrpcOk());
    ASSERT_THAT(StartRollout("two-1", "cf350-a", ParsePlan(kManualPlan)),
                GrpcOk());
  }

  httplib::Client Http() const {
    httplib::Client c("127.0.0.1", HttpPort());
    c.set_connection_timeout(5);
    c.set_read_timeout(10);
    return c;
  }

  static httplib::Headers Bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }

  // The request id in ringctl's "pending approval: apr-... " line.
  static std::string RequestIdIn(const std::string& text) {
    std::smatch m;
    if (!std::regex_search(text, m, std::regex("apr-[0-9a-f]{16}"))) return "";
    return m.str();
  }
};

TEST_F(E2EApprovalsTest, RingctlPromoteWaitsForASecondPrincipal) {
  CommandResult r =
      Ctl({"rollout", "promote", "two-1", "--reason=dogfood is fine"},
          kOperatorToken);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("needs the approval of a second principal"));
  const std::string id = RequestIdIn(r.out);
  ASSERT_FALSE(id.empty()) << r.out;
  EXPECT_THAT(r.out, AllOf(HasSubstr("pending approval: " + id),
                           HasSubstr("promote of rollout two-1"),
                           HasSubstr("by alice")));
  EXPECT_EQ(GetRollout("two-1").rollout().stage(), 0u);

  r = Ctl({"approvals", "list"}, kPublisherToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(id));

  // The requester cannot approve its own request.
  r = Ctl({"approve", id, "--reason=looks good to me"}, kOperatorToken);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, AllOf(HasSubstr("PERMISSION_DENIED"),
                           HasSubstr("second, different principal")));
  // Nor may a publisher (its role may not promote).
  r = Ctl({"approve", id, "--reason=ci says ok"}, kPublisherToken);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED"));
  EXPECT_EQ(GetRollout("two-1").rollout().stage(), 0u);

  r = Ctl({"approve", id, "--reason=checked the dashboard"}, kAdminToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("approved " + id));
  const Rollout after = GetRollout("two-1").rollout();
  EXPECT_EQ(after.stage(), 1u);
  EXPECT_TRUE(after.overridden());

  r = Ctl({"audit", "list", "--rollout=two-1", "--json"}, kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::ListAuditResponse audit;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &audit).ok())
      << r.out;
  ASSERT_GE(audit.entries_size(), 3);
  const cfg::AuditEntry& requested = audit.entries(audit.entries_size() - 2);
  const cfg::AuditEntry& promoted = audit.entries(audit.entries_size() - 1);
  EXPECT_EQ(requested.action(), "approval_requested");
  EXPECT_EQ(requested.actor(), "alice");
  EXPECT_EQ(requested.approval_request().id(), id);
  EXPECT_EQ(promoted.action(), "promote");
  EXPECT_EQ(promoted.actor(), "alice");
  EXPECT_EQ(promoted.approved_by(), "root");
  EXPECT_EQ(promoted.approval_request_id(), id);
  r = Ctl({"audit", "verify"}, kOperatorToken);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

  // Settled: not again.
  r = Ctl({"approve", id, "--reason=again"}, kAdminToken);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
}

TEST_F(E2EApprovalsTest, HttpAnswers202ThenTheSecondPrincipalApproves) {
  httplib::Client http = Http();
  auto r = http.Post("/v1/rollouts/two-1/promote", Bearer(kOperatorToken),
                     R"({"reason": "dogfood is fine"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202) << r->body;
  cfg::ApprovalRequest held;
  {
    // {"code","message","approvalRequest"}: the request is the last field.
    const std::string key = "\"approvalRequest\":";
    const size_t at = r->body.find(key);
    ASSERT_NE(at, std::string::npos) << r->body;
    std::string json = r->body.substr(at + key.size());
    json.pop_back();
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &held).ok())
        << json;
  }
  EXPECT_THAT(r->body, HasSubstr("\"code\":\"FAILED_PRECONDITION\""));
  EXPECT_EQ(held.requested_by(), "alice");
  EXPECT_EQ(held.rollout_id(), "two-1");
  const std::string id = held.id();

  auto list = http.Get("/v1/approvals", Bearer(kPublisherToken));
  ASSERT_TRUE(list);
  EXPECT_EQ(list->status, 200);
  EXPECT_THAT(list->body, HasSubstr(id));

  const std::string approve = "/v1/approvals/" + id + "/approve";
  r = http.Post(approve, Bearer(kOperatorToken), R"({"reason": "me"})",
                "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_THAT(r->body, HasSubstr("second, different principal"));
  r = http.Post(approve, Bearer(kAdminToken), R"({})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_THAT(r->body, HasSubstr("reason"));
  EXPECT_EQ(GetRollout("two-1").rollout().stage(), 0u);

  r = http.Post(approve, Bearer(kAdminToken), R"({"reason": "checked"})",
                "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  v1::ApproveResponse approved;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(r->body, &approved).ok());
  EXPECT_EQ(approved.rollout().stage(), 1u);
  EXPECT_EQ(GetRollout("two-1").rollout().stage(), 1u);

  // Clearing an emergency stop is guarded too; the requester withdraws.
  r = http.Post("/v1/emergency-stop", Bearer(kOperatorToken),
                R"({"contentType": "channel-file/350", "reason": "incident"})",
                "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  r = http.Post("/v1/emergency-stop/clear", Bearer(kOperatorToken),
                R"({"contentType": "channel-file/350", "reason": "fixed"})",
                "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const std::string clear_id = RequestIdIn(r->body);
  ASSERT_FALSE(clear_id.empty());
  CommandResult c =
      Ctl({"reject", clear_id, "--reason=withdrawn"}, kOperatorToken);
  EXPECT_EQ(c.exit_code, 0) << c.err;
  c = Ctl({"approve", clear_id, "--reason=too late"}, kAdminToken);
  EXPECT_EQ(c.exit_code, 2);
  // Still stopped: a new rollout is refused.
  ASSERT_THAT(CreateRelease("cf350-b", "channel-file/350", kDigestB), GrpcOk());
  EXPECT_THAT(StartRollout("two-2", "cf350-b", ParsePlan(kManualPlan)),
              GrpcStatusIs(grpc::StatusCode::FAILED_PRECONDITION,
                           HasSubstr("emergency stop")));
}

TEST_F(E2EApprovalsTest, PendingRequestsSurviveARestart) {
  CommandResult r =
      Ctl({"rollout", "promote", "two-1", "--reason=go"}, kOperatorToken);
  ASSERT_EQ(r.exit_code, 1) << r.err;
  const std::string id = RequestIdIn(r.out);
  ASSERT_FALSE(id.empty());
  StartServer();  // a restart, same data and flags
  r = Ctl({"approvals", "list", "--json"}, kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(id));
  r = Ctl({"approve", id, "--reason=after the restart"}, kAdminToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(GetRollout("two-1").rollout().stage(), 1u);
}

}  // namespace
}  // namespace ringfence::e2e
