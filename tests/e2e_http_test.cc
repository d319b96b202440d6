// The HTTP/JSON API of the real ringfenced (--http_listen), driven by a real
// HTTP client (cpp-httplib), checked against the gRPC API it forwards to,
// and `ringctl audit verify` on a real and on a tampered audit log.
#include <httplib.h>
#include <signal.h>

#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "e2e_fixture.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "ringfence/agent_server.h"
#include "service/agent_http_transport.h"
#include "status_matchers.h"

namespace ringfence::e2e {
namespace {

using cfg::AuditEntry;
using ::google::protobuf::util::MessageDifferencer;
using ::ringfence::testing::StatusIs;
using ::testing::StartsWith;

class E2EHttpTest : public E2ETest {
 protected:
  // The fixture's server, restarted with the HTTP listener (every later
  // StartServer keeps it).
  void SetUp() override {
    E2ETest::SetUp();
    if (HasFatalFailure()) return;
    StartServerWithHttp();
  }

  httplib::Client Http() const {
    httplib::Client c("127.0.0.1", HttpPort());
    c.set_connection_timeout(5);
    c.set_read_timeout(10);
    return c;
  }

  static AgentIdentity Identity(const std::string& host,
                                const std::string& content_type) {
    AgentIdentity identity;
    identity.host_id = host;
    identity.content_type = content_type;
    return identity;
  }

  static httplib::Headers Bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }

  // The decoded JSON body of a successful response, or a test failure.
  template <typename M>
  static M Parse(const httplib::Result& r) {
    M m;
    if (!r) {
      ADD_FAILURE() << "no response: " << httplib::to_string(r.error());
      return m;
    }
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r->body, &m).ok())
        << r->body;
    return m;
  }

  void StartManualRollout(const std::string& id) {
    ASSERT_THAT(CreateRelease(id + "-rel", "ct/" + id), GrpcOk());
    ASSERT_THAT(StartRollout(id, id + "-rel", ParsePlan(kManualPlan)),
                GrpcOk());
  }
};

TEST_F(E2EHttpTest, ListsRolloutsAsJson) {
  StartManualRollout("web-1");
  httplib::Client http = Http();
  auto r = http.Get("/v1/rollouts", Bearer(kOperatorToken));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  v1::ListRolloutsResponse list = Parse<v1::ListRolloutsResponse>(r);
  ASSERT_EQ(list.rollouts_size(), 1);
  EXPECT_EQ(list.rollouts(0).id(), "web-1");
  // Canonical JSON: lowerCamelCase names, enums by name.
  EXPECT_THAT(r->body, HasSubstr("\"contentType\":\"ct/web-1\""));

  // Query parameters filter like the request's fields.
  auto none =
      http.Get("/v1/rollouts?contentType=ct%2Fother", Bearer(kOperatorToken));
  EXPECT_EQ(Parse<v1::ListRolloutsResponse>(none).rollouts_size(), 0);
  auto one = http.Get("/v1/rollouts/web-1", Bearer(kPublisherToken));
  EXPECT_EQ(Parse<v1::GetRolloutResponse>(one).rollout().id(), "web-1");
  auto release = http.Get("/v1/releases/web-1-rel", Bearer(kOperatorToken));
  EXPECT_EQ(Parse<Release>(release).content_type(), "ct/web-1");
  auto releases = http.Get("/v1/releases", Bearer(kOperatorToken));
  EXPECT_EQ(Parse<v1::ListReleasesResponse>(releases).releases_size(), 1);
}

TEST_F(E2EHttpTest, PauseWithReasonChangesStateSeenOverGrpc) {
  StartManualRollout("web-2");
  ASSERT_EQ(GetRollout("web-2").rollout().state(), config::v1::RUNNING);
  httplib::Client http = Http();
  auto r =
      http.Post("/v1/rollouts/web-2/pause", Bearer(kOperatorToken),
                R"({"reason": "investigating ticket 42"})", "application/json");
  Rollout paused = Parse<Rollout>(r);
  EXPECT_EQ(paused.state(), config::v1::PAUSED);

  // The same state over gRPC, and the audit log names the token's actor.
  const v1::GetRolloutResponse over_grpc = GetRollout("web-2");
  EXPECT_EQ(over_grpc.rollout().state(), config::v1::PAUSED);
  EXPECT_THAT(over_grpc.rollout().reason(),
              HasSubstr("investigating ticket 42"));
  v1::ListAuditRequest req;
  req.set_rollout_id("web-2");
  v1::ListAuditResponse audit;
  ASSERT_THAT(rollouts_->ListAudit(Ctx(kOperatorToken).get(), req, &audit),
              GrpcOk());
  ASSERT_GE(audit.entries_size(), 2);
  const AuditEntry& last = audit.entries(audit.entries_size() - 1);
  EXPECT_EQ(last.action(), "pause");
  EXPECT_EQ(last.actor(), "alice");
  EXPECT_EQ(last.reason(), "investigating ticket 42");

  // Resume, then a second pause over HTTP; a pause of a paused rollout is
  // FAILED_PRECONDITION, i.e. 400 with the service's message.
  auto resumed = http.Post("/v1/rollouts/web-2/resume", Bearer(kOperatorToken),
                           R"({"reason": "fixed"})", "application/json");
  EXPECT_EQ(Parse<Rollout>(resumed).state(), config::v1::RUNNING);
  ASSERT_TRUE(http.Post("/v1/rollouts/web-2/pause", Bearer(kOperatorToken),
                        R"({"reason": "again"})", "application/json"));
  auto twice = http.Post("/v1/rollouts/web-2/pause", Bearer(kOperatorToken),
                         R"({"reason": "again"})", "application/json");
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->status, 400);
  EXPECT_THAT(twice->body, HasSubstr("\"code\":\"FAILED_PRECONDITION\""));
}

TEST_F(E2EHttpTest, TokensAndRolesAreTheGrpcOnes) {
  StartManualRollout("web-3");
  httplib::Client http = Http();
  auto missing = http.Get("/v1/rollouts");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  EXPECT_THAT(missing->body, HasSubstr("\"code\":\"UNAUTHENTICATED\""));
  auto wrong = http.Get("/v1/rollouts", Bearer("not-a-token"));
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_THAT(wrong->body, HasSubstr("unknown token"));
  // A publisher may read but not pause; a host may not read.
  auto publisher =
      http.Post("/v1/rollouts/web-3/pause", Bearer(kPublisherToken),
                R"({"reason": "r"})", "application/json");
  ASSERT_TRUE(publisher);
  EXPECT_EQ(publisher->status, 403);
  EXPECT_THAT(publisher->body,
              AllOf(HasSubstr("PERMISSION_DENIED"), HasSubstr("PauseRollout")));
  auto host = http.Get("/v1/rollouts", Bearer(kHost7Token));
  ASSERT_TRUE(host);
  EXPECT_EQ(host->status, 403);
  EXPECT_EQ(GetRollout("web-3").rollout().state(), config::v1::RUNNING);
  // /metrics needs a reader's token too (no --metrics_no_auth).
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 401);
  auto metrics_ok = http.Get("/metrics", Bearer(kOperatorToken));
  ASSERT_TRUE(metrics_ok);
  EXPECT_EQ(metrics_ok->status, 200);
  EXPECT_THAT(metrics_ok->body,
              HasSubstr("ringfence_rollout_state{content_type=\"ct/web-3\","
                        "rollout_id=\"web-3\",state=\"running\"} 1"));
}

TEST_F(E2EHttpTest, BadRequestsNameTheProblem) {
  StartManualRollout("web-4");
  httplib::Client http = Http();
  auto unknown =
      http.Post("/v1/rollouts/web-4/pause", Bearer(kOperatorToken),
                R"({"reason": "r", "colour": "blue"})", "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 400);
  EXPECT_THAT(unknown->body,
              AllOf(HasSubstr("INVALID_ARGUMENT"), HasSubstr("colour")));
  auto query = http.Get("/v1/audit?colour=blue", Bearer(kOperatorToken));
  ASSERT_TRUE(query);
  EXPECT_EQ(query->status, 400);
  EXPECT_THAT(query->body, HasSubstr("colour"));
  // Validation is the handler's: the field is named.
  auto no_reason = http.Post("/v1/rollouts/web-4/pause", Bearer(kOperatorToken),
                             "{}", "application/json");
  ASSERT_TRUE(no_reason);
  EXPECT_EQ(no_reason->status, 400);
  EXPECT_THAT(no_reason->body, HasSubstr("reason: must not be empty"));
  auto limit = http.Get("/v1/audit?limit=5000", Bearer(kOperatorToken));
  ASSERT_TRUE(limit);
  EXPECT_EQ(limit->status, 400);
  EXPECT_THAT(limit->body, HasSubstr("limit: must be at most 1000"));
  // The body may not contradict the path.
  auto other =
      http.Post("/v1/rollouts/web-4/pause", Bearer(kOperatorToken),
                R"({"reason": "r", "rolloutId": "web-9"})", "application/json");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 400);
  EXPECT_THAT(other->body, HasSubstr("rolloutId"));
  auto missing = http.Get("/v1/rollouts/nope", Bearer(kOperatorToken));
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto no_route = http.Get("/v2/anything", Bearer(kOperatorToken));
  ASSERT_TRUE(no_route);
  EXPECT_EQ(no_route->status, 404);
  EXPECT_THAT(no_route->body, HasSubstr("\"code\":\"NOT_FOUND\""));
  // Over --http_max_body_bytes (1 MiB by default): 413, nothing runs.
  const std::string huge =
      absl::StrCat(R"({"reason": ")", std::string(2 << 20, 'x'), R"("})");
  auto big = http.Post("/v1/rollouts/web-4/pause", Bearer(kOperatorToken), huge,
                       "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(GetRollout("web-4").rollout().state(), config::v1::RUNNING);
}

TEST_F(E2EHttpTest, EmergencyStopAndGateOverHttp) {
  StartManualRollout("web-5");
  httplib::Client http = Http();
  auto stop = http.Post("/v1/emergency-stop", Bearer(kOperatorToken),
                        R"({"contentType": "ct/web-5", "reason": "fire"})",
                        "application/json");
  v1::EmergencyStopResponse stopped = Parse<v1::EmergencyStopResponse>(stop);
  EXPECT_THAT(stopped.halted_rollout_ids(), Contains("web-5"));
  EXPECT_EQ(GetRollout("web-5").rollout().state(), config::v1::HALTED);
  auto gate = http.Get("/v1/gate?releaseId=web-5-rel", Bearer(kPublisherToken));
  EXPECT_EQ(Parse<v1::CheckGateResponse>(gate).status(), v1::GATE_REJECTED);
  auto clear = http.Post("/v1/emergency-stop/clear", Bearer(kOperatorToken),
                         R"({"contentType": "ct/web-5", "reason": "out"})",
                         "application/json");
  ASSERT_TRUE(clear);
  EXPECT_EQ(clear->status, 200) << clear->body;
}

TEST_F(E2EHttpTest, AuditOverHttpEqualsGrpcAndVerifies) {
  StartManualRollout("web-6");
  StartManualRollout("web-7");
  ASSERT_THAT(Act("pause", "web-6", kOperatorToken), GrpcOk());
  httplib::Client http = Http();
  for (const std::string& filter : {std::string(), std::string("web-6")}) {
    SCOPED_TRACE(filter);
    v1::ListAuditRequest req;
    req.set_limit(1000);
    req.set_rollout_id(filter);
    v1::ListAuditResponse over_grpc;
    ASSERT_THAT(
        rollouts_->ListAudit(Ctx(kPublisherToken).get(), req, &over_grpc),
        GrpcOk());
    auto r =
        http.Get(absl::StrCat("/v1/audit?limit=1000",
                              filter.empty() ? "" : "&rolloutId=" + filter),
                 Bearer(kPublisherToken));
    const v1::ListAuditResponse over_http = Parse<v1::ListAuditResponse>(r);
    EXPECT_TRUE(MessageDifferencer::Equals(over_grpc, over_http))
        << over_grpc.DebugString() << "\nvs\n"
        << over_http.DebugString();
    ASSERT_GE(over_http.entries_size(), filter.empty() ? 5 : 2);
    for (const AuditEntry& e : over_http.entries()) {
      EXPECT_EQ(e.hash().size(), 64u);
      if (!filter.empty()) {
        EXPECT_EQ(e.rollout_id(), filter);
      }
    }
  }
  // Paging: one entry at a time reaches the same entries.
  std::vector<uint64_t> seqs;
  uint64_t after = 0;
  for (int i = 0; i < 100; ++i) {
    auto r = http.Get(absl::StrCat("/v1/audit?limit=1&afterSeq=", after),
                      Bearer(kOperatorToken));
    const v1::ListAuditResponse page = Parse<v1::ListAuditResponse>(r);
    if (page.entries_size() == 0) break;
    seqs.push_back(page.entries(0).seq());
    after = page.next_after_seq();
  }
  ASSERT_GE(seqs.size(), 5u);
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);

  CommandResult ok = Ctl({"audit", "verify"}, kOperatorToken);
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_THAT(ok.out, HasSubstr(absl::StrCat("audit log OK: ", seqs.size(),
                                             " entries")));
  CommandResult listed = Ctl({"audit", "list", "--rollout=web-6"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, AllOf(HasSubstr("pause"), HasSubstr("alice")));
  EXPECT_THAT(listed.out, Not(HasSubstr("web-7")));
  // It read to the end of the log: no "(more" line. A smaller page has one.
  EXPECT_THAT(listed.out, Not(HasSubstr("(more:")));
  CommandResult paged = Ctl({"audit", "list", "--limit=2"});
  EXPECT_EQ(paged.exit_code, 0) << paged.err;
  EXPECT_THAT(paged.out, HasSubstr("(more: --after=2)"));

  // Tamper with the pause's reason in the stored row while the server is
  // stopped: verify names that entry and fails.
  v1::ListAuditRequest req;
  req.set_rollout_id("web-6");
  v1::ListAuditResponse web6;
  ASSERT_THAT(rollouts_->ListAudit(Ctx(kOperatorToken).get(), req, &web6),
              GrpcOk());
  const uint64_t paused_seq = web6.entries(web6.entries_size() - 1).seq();
  server_->Signal(SIGTERM);
  ASSERT_EQ(server_->Wait(absl::Seconds(15)), 0);
  const std::string db = dir_ + "/data/ringfence.db";
  const std::string sqlite3 = FindOnPath("sqlite3");
  ASSERT_FALSE(sqlite3.empty()) << "sqlite3 not found on $PATH";
  CommandResult hex = RunCommand(
      {sqlite3, db,
       absl::StrCat("SELECT hex(body) FROM audit WHERE seq = ", paused_seq)});
  ASSERT_EQ(hex.exit_code, 0) << hex.err;
  const std::string body_hex(absl::StripAsciiWhitespace(hex.out));
  const std::string from = absl::BytesToHexString("pause from the e2e test");
  const std::string to = absl::BytesToHexString("PAUSE FROM THE E2E TEST");
  ASSERT_THAT(absl::AsciiStrToLower(body_hex), HasSubstr(from));
  const std::string tampered =
      absl::StrReplaceAll(absl::AsciiStrToLower(body_hex), {{from, to}});
  CommandResult update =
      RunCommand({sqlite3, db,
                  absl::StrCat("UPDATE audit SET body = X'", tampered,
                               "' WHERE seq = ", paused_seq)});
  ASSERT_EQ(update.exit_code, 0) << update.err;
  StartServer();
  CommandResult broken = Ctl({"audit", "verify"}, kOperatorToken);
  EXPECT_EQ(broken.exit_code, 2) << broken.out << broken.err;
  EXPECT_THAT(broken.out,
              AllOf(HasSubstr(absl::StrCat("BROKEN at entry ", paused_seq)),
                    HasSubstr("altered")));
}

TEST_F(E2EHttpTest, DashboardIsServedWithSecurityHeaders) {
  httplib::Client http = Http();
  // The page holds no data, so it needs no token; its calls do.
  auto page = http.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(page->get_header_value("Content-Security-Policy"),
            "default-src 'self'; frame-ancestors 'none'");
  EXPECT_EQ(page->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(page->get_header_value("Referrer-Policy"), "no-referrer");
  // No inline script: the only <script> loads the served file.
  EXPECT_THAT(page->body, HasSubstr("<script src=\"/ui/dashboard.js\" defer>"
                                    "</script>"));
  EXPECT_EQ(page->body.find("<script>"), std::string::npos);
  EXPECT_FALSE(std::regex_search(page->body, std::regex(R"(\son[a-z]+\s*=)")))
      << "inline event handlers would need 'unsafe-inline'";
  auto js = http.Get("/ui/dashboard.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_EQ(js->get_header_value("Content-Type"),
            "text/javascript; charset=utf-8");
  EXPECT_THAT(js->body,
              AllOf(HasSubstr("sessionStorage"), HasSubstr("'Authorization'")));
  EXPECT_EQ(js->body.find("innerHTML"), std::string::npos);
  auto css = http.Get("/ui/dashboard.css");
  ASSERT_TRUE(css);
  EXPECT_EQ(css->status, 200);
  EXPECT_EQ(css->get_header_value("Content-Type"), "text/css; charset=utf-8");
  // The API's answers carry the same headers.
  auto api = http.Get("/v1/rollouts", Bearer(kOperatorToken));
  ASSERT_TRUE(api);
  EXPECT_EQ(api->get_header_value("X-Content-Type-Options"), "nosniff");
  auto missing = http.Get("/ui/nothing.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(E2EHttpTest, CrossOriginActionsAreRefused) {
  StartManualRollout("web-8");
  httplib::Client http = Http();
  const std::string self = absl::StrCat("http://127.0.0.1:", HttpPort());
  for (const std::string& origin :
       {std::string("http://evil.example"), std::string("null"),
        absl::StrCat("https://127.0.0.1:", HttpPort()),
        absl::StrCat("http://127.0.0.1:", HttpPort() + 1)}) {
    SCOPED_TRACE(origin);
    httplib::Headers headers = Bearer(kOperatorToken);
    headers.emplace("Origin", origin);
    auto r =
        http.Post("/v1/rollouts/web-8/pause", headers,
                  R"({"reason": "from another site"})", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 403);
    EXPECT_THAT(r->body, AllOf(HasSubstr("PERMISSION_DENIED"),
                               HasSubstr("cross-origin")));
  }
  EXPECT_EQ(GetRollout("web-8").rollout().state(), config::v1::RUNNING);
  // Reads from another origin are not refused here (a browser keeps the
  // answer from the other site's page: no CORS headers are sent).
  httplib::Headers read = Bearer(kOperatorToken);
  read.emplace("Origin", "http://evil.example");
  auto list = http.Get("/v1/rollouts", read);
  ASSERT_TRUE(list);
  EXPECT_EQ(list->status, 200);
  EXPECT_FALSE(list->has_header("Access-Control-Allow-Origin"));
  // The page's own origin acts (as does a client that sends no Origin).
  httplib::Headers same = Bearer(kOperatorToken);
  same.emplace("Origin", self);
  auto r = http.Post("/v1/rollouts/web-8/pause", same,
                     R"({"reason": "from the dashboard"})", "application/json");
  EXPECT_EQ(Parse<Rollout>(r).state(), config::v1::PAUSED);
}

// The Fleet routes for agents: binary protobuf in and out, through the same
// gRPC handler (its answer equals gRPC's).
TEST_F(E2EHttpTest, FleetRoutesSpeakBinaryProtobuf) {
  ASSERT_THAT(CreateRelease("fleet-rel", "ct/fleet"), GrpcOk());
  ASSERT_THAT(StartRollout("fleet-1", "fleet-rel", ParsePlan(kManualPlan)),
              GrpcOk());
  v1::GetAssignmentRequest req;
  req.set_host_id("h7");
  req.set_agent_version("7.11.0");
  req.add_labels("ring:dogfood");
  req.add_content_types("ct/fleet");
  httplib::Client http = Http();
  auto r = http.Post("/v1/fleet/assignment", Bearer(kHost7Token),
                     req.SerializeAsString(), "application/x-protobuf");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/x-protobuf");
  v1::GetAssignmentResponse over_http;
  ASSERT_TRUE(over_http.ParseFromString(r->body));
  ASSERT_EQ(over_http.assignments_size(), 1);
  EXPECT_TRUE(over_http.assignments(0).has_release());
  EXPECT_EQ(over_http.assignments(0).release_id(), "fleet-rel");
  v1::GetAssignmentResponse over_grpc;
  ASSERT_THAT(fleet_->GetAssignment(Ctx(kHost7Token).get(), req, &over_grpc),
              GrpcOk());
  EXPECT_TRUE(MessageDifferencer::Equals(over_http, over_grpc))
      << over_http.DebugString() << " vs " << over_grpc.DebugString();

  v1::ReportTelemetryRequest report;
  v1::TelemetryEvent* e = report.add_events();
  e->set_host_id("h7");
  e->set_type(v1::HEARTBEAT);
  e->set_release_id("fleet-rel");
  auto sent = http.Post("/v1/fleet/telemetry", Bearer(kHost7Token),
                        report.SerializeAsString(), "application/x-protobuf");
  ASSERT_TRUE(sent);
  ASSERT_EQ(sent->status, 200) << sent->body;
  v1::ReportTelemetryResponse ack;
  ASSERT_TRUE(ack.ParseFromString(sent->body));
  EXPECT_EQ(ack.accepted_events(), 1u);
}

// Exactly as strict as gRPC: a token is needed, a host token speaks for its
// own host only (asking or reporting), and a role without Fleet access is
// refused.
TEST_F(E2EHttpTest, FleetRoutesAuthenticateAndBindTheHost) {
  v1::GetAssignmentRequest ask;
  ask.set_host_id("h7");
  ask.add_content_types("ct/fleet");
  v1::GetAssignmentRequest ask_h8 = ask;
  ask_h8.set_host_id("h8");
  v1::ReportTelemetryRequest report_h8;
  v1::TelemetryEvent* e = report_h8.add_events();
  e->set_host_id("h8");
  e->set_type(v1::HEARTBEAT);
  httplib::Client http = Http();
  auto post = [&](const char* path, const httplib::Headers& headers,
                  const google::protobuf::Message& m) {
    return http.Post(path, headers, m.SerializeAsString(),
                     "application/x-protobuf");
  };
  auto missing = post("/v1/fleet/assignment", {}, ask);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  EXPECT_THAT(missing->body, HasSubstr("\"code\":\"UNAUTHENTICATED\""));
  auto wrong = post("/v1/fleet/assignment", Bearer("not-a-token"), ask);
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto other_host = post("/v1/fleet/assignment", Bearer(kHost7Token), ask_h8);
  ASSERT_TRUE(other_host);
  EXPECT_EQ(other_host->status, 403);
  EXPECT_THAT(
      other_host->body,
      AllOf(HasSubstr("\"code\":\"PERMISSION_DENIED\""), HasSubstr("h8")));
  auto other_events =
      post("/v1/fleet/telemetry", Bearer(kHost7Token), report_h8);
  ASSERT_TRUE(other_events);
  EXPECT_EQ(other_events->status, 403);
  EXPECT_THAT(other_events->body, HasSubstr("\"code\":\"PERMISSION_DENIED\""));
  auto publisher = post("/v1/fleet/assignment", Bearer(kPublisherToken), ask);
  ASSERT_TRUE(publisher);
  EXPECT_EQ(publisher->status, 403);
  // The relay speaks for every host.
  auto relay = post("/v1/fleet/assignment", Bearer(kRelayToken), ask_h8);
  ASSERT_TRUE(relay);
  EXPECT_EQ(relay->status, 200) << relay->body;

  // HttpAgentTransport sees the same codes.
  HttpAgentOptions options;
  options.server = absl::StrCat("http://127.0.0.1:", HttpPort());
  options.token = kHost7Token;
  absl::StatusOr<std::unique_ptr<HttpAgentTransport>> transport =
      HttpAgentTransport::Create(options);
  ASSERT_TRUE(transport.ok()) << transport.status();
  const AgentIdentity impostor = Identity("h8", "ct/fleet");
  EXPECT_THAT((*transport)->GetAssignment(impostor, 0).status(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("h8")));
  const AgentIdentity h7 = Identity("h7", "ct/fleet");
  absl::StatusOr<AssignmentAnswer> answer = (*transport)->GetAssignment(h7, 0);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_FALSE(answer->has_release);
  options.token = "not-a-token";
  transport = HttpAgentTransport::Create(options);
  ASSERT_TRUE(transport.ok()) << transport.status();
  EXPECT_THAT((*transport)->GetAssignment(h7, 0).status(),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

// ringfence/agent_server.h, what embedders and ringfence-agent use: the
// same server over gRPC or HTTP by the address alone, a connection that
// can be closed between wakeups, and options refused by name.
TEST_F(E2EHttpTest, OpenAgentServerSpeaksGrpcOrHttpByTheAddress) {
  const AgentIdentity h7 = Identity("h7", "ct/fleet");
  for (const std::string& address :
       {absl::StrCat("127.0.0.1:", port_),
        absl::StrCat("http://127.0.0.1:", HttpPort())}) {
    SCOPED_TRACE(address);
    AgentServerOptions options;
    options.server = address;
    options.token = kHost7Token;
    absl::StatusOr<std::unique_ptr<AgentServerTransport>> transport =
        OpenAgentServer(options);
    ASSERT_TRUE(transport.ok()) << transport.status();
    absl::StatusOr<AssignmentAnswer> answer =
        (*transport)->GetAssignment(h7, 0);
    ASSERT_TRUE(answer.ok()) << answer.status();
    EXPECT_FALSE(answer->has_release);
    // Host binding holds on both.
    EXPECT_THAT(
        (*transport)->GetAssignment(Identity("h8", "ct/fleet"), 0).status(),
        StatusIs(absl::StatusCode::kPermissionDenied));
    (*transport)->CloseConnection();
    EXPECT_TRUE((*transport)->GetAssignment(h7, 0).ok());  // reopened
  }
  struct Bad {
    AgentServerOptions options;
    absl::StatusCode code;
    const char* names;
  };
  auto with = [](auto set) {
    AgentServerOptions o;
    o.server = "127.0.0.1:1";
    set(o);
    return o;
  };
  const Bad bad[] = {
      {with([](AgentServerOptions& o) { o.server.clear(); }),
       absl::StatusCode::kInvalidArgument, "server: "},
      {with([](AgentServerOptions& o) { o.deadline = absl::ZeroDuration(); }),
       absl::StatusCode::kInvalidArgument, "deadline: "},
      {with([](AgentServerOptions& o) { o.server = "http://h:1/path"; }),
       absl::StatusCode::kInvalidArgument, "server: "},
      {with([](AgentServerOptions& o) {
         o.server = "http://127.0.0.1:1";
         o.tls_ca = "/ca.pem";
       }),
       absl::StatusCode::kInvalidArgument, "tls_ca, tls_server_name: "},
      {with([](AgentServerOptions& o) {
         o.server = "http://127.0.0.1:1";
         o.tls_cert = "/c.pem";
         o.tls_key = "/k.pem";
       }),
       absl::StatusCode::kInvalidArgument, "tls_cert, tls_key: "},
      {with([](AgentServerOptions& o) {
         o.server = "https://127.0.0.1:1";
         o.tls_cert = "/c.pem";
         o.tls_key = "/k.pem";
       }),
       absl::StatusCode::kNotFound, "tls_cert /c.pem: "},
      {with([](AgentServerOptions& o) { o.tls_server_name = "rollouts"; }),
       absl::StatusCode::kInvalidArgument, "tls_server_name: "},
      {with([](AgentServerOptions& o) { o.tls_ca = "/no/such/ca.pem"; }),
       absl::StatusCode::kNotFound, "tls_ca /no/such/ca.pem: "},
      {with([](AgentServerOptions& o) { o.server = "ftp://127.0.0.1:1"; }),
       absl::StatusCode::kInvalidArgument, "server: \"ftp://"},
      {with([](AgentServerOptions& o) {
         o.server = "https://127.0.0.1:1";
         o.token = "a\nb";
       }),
       absl::StatusCode::kInvalidArgument, "token: "},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.names);
    // The message starts with the option's name, once.
    EXPECT_THAT(OpenAgentServer(b.options).status(),
                StatusIs(b.code, StartsWith(b.names)));
  }
}

TEST_F(E2EHttpTest, FleetRoutesRefuseBadBodies) {
  httplib::Client http = Http();
  // Not protobuf at all: 400 naming the message expected.
  auto garbage =
      http.Post("/v1/fleet/assignment", Bearer(kRelayToken),
                std::string("\xff\xff\xff\xff", 4), "application/x-protobuf");
  ASSERT_TRUE(garbage);
  EXPECT_EQ(garbage->status, 400);
  EXPECT_THAT(
      garbage->body,
      AllOf(HasSubstr("\"code\":\"INVALID_ARGUMENT\""),
            HasSubstr("not a binary ringfence.v1.GetAssignmentRequest")));
  auto bad_events =
      http.Post("/v1/fleet/telemetry", Bearer(kRelayToken),
                std::string("\x0a\x05\x0a", 3), "application/x-protobuf");
  ASSERT_TRUE(bad_events);
  EXPECT_EQ(bad_events->status, 400);
  EXPECT_THAT(bad_events->body,
              HasSubstr("not a binary ringfence.v1.ReportTelemetryRequest"));
  // JSON is not what these routes take.
  auto json = http.Post("/v1/fleet/assignment", Bearer(kRelayToken),
                        R"({"hostId": "h7"})", "application/json");
  ASSERT_TRUE(json);
  EXPECT_EQ(json->status, 415);
  EXPECT_THAT(json->body, HasSubstr("application/x-protobuf"));
  // The handler's own validation, as over gRPC.
  v1::GetAssignmentRequest no_host;
  no_host.add_content_types("ct/fleet");
  auto invalid =
      http.Post("/v1/fleet/assignment", Bearer(kRelayToken),
                no_host.SerializeAsString(), "application/x-protobuf");
  ASSERT_TRUE(invalid);
  EXPECT_EQ(invalid->status, 400);
  EXPECT_THAT(invalid->body, HasSubstr("host_id"));
  // Over --http_max_body_bytes (1 MiB by default): 413 before any handler.
  v1::ReportTelemetryRequest huge;
  for (int i = 0; i < 20000; ++i) {
    v1::TelemetryEvent* e = huge.add_events();
    e->set_host_id(absl::StrCat("host-with-a-long-name-", i));
    e->set_type(v1::HEARTBEAT);
    e->set_release_id(std::string(40, 'r'));
  }
  ASSERT_GT(huge.ByteSizeLong(), size_t{1} << 20);
  auto big = http.Post("/v1/fleet/telemetry", Bearer(kRelayToken),
                       huge.SerializeAsString(), "application/x-protobuf");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_THAT(big->body, HasSubstr("RESOURCE_EXHAUSTED"));
}

// The ingestor's backpressure (RESOURCE_EXHAUSTED) is 429 with Retry-After,
// which HttpAgentTransport hands to the agent as its wait.
TEST_F(E2EHttpTest, FleetBackpressureIs429WithRetryAfter) {
  StartServer({"--max_inflight_events=1000", "--testing_ingest_delay=1.5s"});
  auto heartbeats = [](int from, int n) {
    std::vector<SpooledEvent> events(n);
    for (int i = 0; i < n; ++i) {
      events[i].event.host_id = absl::StrCat("host-", from + i);
      events[i].event.type = EventType::kHeartbeat;
      events[i].event.time = absl::Now();
    }
    return events;
  };
  HttpAgentOptions options;
  options.server = absl::StrCat("http://127.0.0.1:", HttpPort());
  options.token = kRelayToken;
  options.backpressure_retry = absl::Seconds(42);
  auto first = HttpAgentTransport::Create(options);
  auto second = HttpAgentTransport::Create(options);
  ASSERT_TRUE(first.ok() && second.ok());
  const std::vector<SpooledEvent> a = heartbeats(0, 600);
  const std::vector<SpooledEvent> b = heartbeats(1000, 500);
  absl::Duration first_retry, second_retry;
  absl::Status first_status;
  std::thread t(
      [&] { first_status = (*first)->ReportTelemetry(a, &first_retry); });
  absl::SleepFor(absl::Milliseconds(200));
  const absl::Status second_status =
      (*second)->ReportTelemetry(b, &second_retry);
  t.join();
  ASSERT_NE(first_status.ok(), second_status.ok())
      << first_status << " / " << second_status;
  const absl::Status& failed = first_status.ok() ? second_status : first_status;
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("limit 1000")));
  // The server's Retry-After (5 s), not the transport's default.
  EXPECT_EQ(first_status.ok() ? second_retry : first_retry, absl::Seconds(5));
  // Retried alone, it fits.
  EXPECT_TRUE((*second)->ReportTelemetry(b, &second_retry).ok());
}

TEST_F(E2EHttpTest, HttpsWithTheServersCertificate) {
  const TestCertFiles* certs = TestCerts();
  ASSERT_NE(certs, nullptr) << "could not generate certificates";
  absl::StatusOr<std::optional<ClientTls>> tls =
      LoadClientTls(certs->ca, "", "");
  ASSERT_TRUE(tls.ok()) << tls.status();
  client_tls_ = *tls;
  StartServer(
      {"--tls_cert=" + certs->server_cert, "--tls_key=" + certs->server_key});
  EXPECT_THAT(ReadFile(LogPath(starts_)), HasSubstr("serving HTTPS on port"));
  ASSERT_THAT(CreateRelease("tls-rel", "ct/tls"), GrpcOk());

  httplib::SSLClient https("127.0.0.1", HttpPort());
  https.set_ca_cert_path(certs->ca.c_str());
  https.enable_server_certificate_verification(true);
  https.set_connection_timeout(5);
  auto r = https.Get("/v1/releases/tls-rel", Bearer(kOperatorToken));
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(Parse<Release>(r).content_type(), "ct/tls");
  // A client that trusts another CA gets no answer.
  httplib::SSLClient wrong_ca("127.0.0.1", HttpPort());
  wrong_ca.set_ca_cert_path(certs->other_ca.c_str());
  wrong_ca.enable_server_certificate_verification(true);
  wrong_ca.set_connection_timeout(5);
  EXPECT_FALSE(wrong_ca.Get("/v1/releases", Bearer(kOperatorToken)));
  // Plain HTTP to the HTTPS listener is not served.
  auto plain = Http().Get("/v1/releases", Bearer(kOperatorToken));
  EXPECT_FALSE(plain && plain->status == 200);
}

// HttpAgentTransport over HTTPS: the server's certificate checked against
// the CA given, under the name given (connecting to 127.0.0.1); a client
// trusting another CA gets UNAVAILABLE.
TEST_F(E2EHttpTest, AgentTransportOverHttps) {
  const TestCertFiles* certs = TestCerts();
  ASSERT_NE(certs, nullptr) << "could not generate certificates";
  absl::StatusOr<std::optional<ClientTls>> tls =
      LoadClientTls(certs->ca, "", "");
  ASSERT_TRUE(tls.ok()) << tls.status();
  client_tls_ = *tls;
  StartServer(
      {"--tls_cert=" + certs->server_cert, "--tls_key=" + certs->server_key});
  HttpAgentOptions options;
  options.server = absl::StrCat("https://127.0.0.1:", HttpPort());
  options.token = kHost7Token;
  options.ca_file = certs->ca;
  options.server_name = "localhost";
  auto transport = HttpAgentTransport::Create(options);
  ASSERT_TRUE(transport.ok()) << transport.status();
  const AgentIdentity h7 = Identity("h7", "ct/tls");
  for (int i = 0; i < 2; ++i) {  // a new connection after closing one
    EXPECT_TRUE((*transport)->GetAssignment(h7, 0).ok());
    (*transport)->CloseConnection();
  }
  options.ca_file = certs->other_ca;
  auto wrong_ca = HttpAgentTransport::Create(options);
  ASSERT_TRUE(wrong_ca.ok()) << wrong_ca.status();
  EXPECT_THAT((*wrong_ca)->GetAssignment(h7, 0),
              StatusIs(absl::StatusCode::kUnavailable));
  // What Create refuses.
  for (const char* bad : {"ftp://127.0.0.1:1", "https://127.0.0.1:1/v1",
                          "http://user@127.0.0.1:1", "127.0.0.1:1"}) {
    options.server = bad;
    EXPECT_THAT(HttpAgentTransport::Create(options),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
}

// Under mutual TLS the HTTPS listener asks for a client certificate
// without requiring one: a certificate naming a principal (URI SAN
// ringfence://role/actor) is the caller, as over gRPC, and binds a host
// agent to its host; callers without one still need a token; a certificate
// from another CA fails the handshake. The key by which the listener
// passes certificates on cannot be forged by gRPC callers.
TEST_F(E2EHttpTest, UnderMutualTlsAnHttpsCertificateNamesTheCaller) {
  const TestCertFiles* certs = TestCerts();
  ASSERT_NE(certs, nullptr) << "could not generate certificates";
  // gRPC clients present a certificate naming operator carol.
  absl::StatusOr<std::optional<ClientTls>> tls =
      LoadClientTls(certs->ca, certs->operator_cert, certs->operator_key);
  ASSERT_TRUE(tls.ok()) << tls.status();
  client_tls_ = *tls;
  StartServer({"--tls_cert=" + certs->server_cert,
               "--tls_key=" + certs->server_key,
               "--client_ca=" + certs->client_ca});
  EXPECT_EQ(HealthStatus(""), 1);

  auto https = [&](const std::string& cert, const std::string& key) {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", HttpPort(), cert,
                                                  key);
    c->set_ca_cert_path(certs->ca.c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(5);
    return c;
  };
  // No certificate: the token decides.
  auto anonymous = https("", "")->Get("/v1/rollouts");
  ASSERT_TRUE(anonymous) << httplib::to_string(anonymous.error());
  EXPECT_EQ(anonymous->status, 401);
  auto operator_token =
      https("", "")->Get("/v1/rollouts", Bearer(kOperatorToken));
  ASSERT_TRUE(operator_token);
  EXPECT_EQ(operator_token->status, 200);
  // Carol's certificate, no token: an operator; a host's: not one.
  auto carol =
      https(certs->operator_cert, certs->operator_key)->Get("/v1/rollouts");
  ASSERT_TRUE(carol) << httplib::to_string(carol.error());
  EXPECT_EQ(carol->status, 200) << carol->body;
  auto host = https(certs->host_cert, certs->host_key)
                  ->Get("/v1/rollouts", Bearer(kOperatorToken));
  ASSERT_TRUE(host);
  EXPECT_EQ(host->status, 403) << host->body;  // the certificate wins
  auto wizard = https(certs->unknown_role_cert, certs->unknown_role_key)
                    ->Get("/v1/rollouts", Bearer(kOperatorToken));
  ASSERT_TRUE(wizard);
  EXPECT_EQ(wizard->status, 401) << wizard->body;
  // GET /metrics too.
  auto carol_metrics =
      https(certs->operator_cert, certs->operator_key)->Get("/metrics");
  ASSERT_TRUE(carol_metrics);
  EXPECT_EQ(carol_metrics->status, 200);
  auto host_metrics = https(certs->host_cert, certs->host_key)
                          ->Get("/metrics", Bearer(kOperatorToken));
  ASSERT_TRUE(host_metrics);
  EXPECT_EQ(host_metrics->status, 403);
  // Another CA's certificate: no handshake. (Under TLS 1.3 the server
  // refuses it after the client's side of the handshake is done, so
  // cpp-httplib's client may write to the closed connection: its SSL_write
  // is not guarded against SIGPIPE.)
  signal(SIGPIPE, SIG_IGN);
  EXPECT_FALSE(https(certs->other_cert, certs->other_key)->Get("/v1/rollouts"));

  // The agent's transport with h7's certificate and no token: h7 only.
  HttpAgentOptions options;
  options.server = absl::StrCat("https://127.0.0.1:", HttpPort());
  options.ca_file = certs->ca;
  options.server_name = "localhost";
  options.cert_file = certs->host_cert;
  options.key_file = certs->host_key;
  auto transport = HttpAgentTransport::Create(options);
  ASSERT_TRUE(transport.ok()) << transport.status();
  absl::StatusOr<AssignmentAnswer> h7 =
      (*transport)->GetAssignment(Identity("h7", "ct/mtls"), 0);
  EXPECT_TRUE(h7.ok()) << h7.status();
  EXPECT_THAT((*transport)->GetAssignment(Identity("h8", "ct/mtls"), 0),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("h8")));
  options.cert_file = certs->other_cert;
  options.key_file = certs->other_key;
  auto stranger = HttpAgentTransport::Create(options);
  ASSERT_TRUE(stranger.ok()) << stranger.status();
  EXPECT_THAT((*stranger)->GetAssignment(Identity("h7", "ct/mtls"), 0),
              StatusIs(absl::StatusCode::kUnavailable));
  options.key_file = certs->host_key;  // not other_cert's key
  EXPECT_THAT(
      HttpAgentTransport::Create(options),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key_file")));

  // A gRPC caller cannot claim to be the listener passing a certificate
  // on: with a forged key, or none, the call is refused.
  for (const char* key : {"", "00", "forged"}) {
    SCOPED_TRACE(key);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kRelayToken));
    ctx.AddMetadata("x-ringfence-peer-uri", "ringfence://admin/mallory");
    if (*key != '\0') ctx.AddMetadata("x-ringfence-peer-key", key);
    v1::ListRolloutsRequest request;
    v1::ListRolloutsResponse response;
    const grpc::Status s = rollouts_->ListRollouts(&ctx, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << s.error_message();
  }
}

TEST_F(E2EHttpTest, WithoutTokensHttpIsLoopbackOnlyEvenUnderMutualTls) {
  server_.reset();
  const CommandResult plain = RunServerToExit({"--http_listen=0.0.0.0:0"});
  EXPECT_EQ(plain.exit_code, 2);
  EXPECT_THAT(plain.err, HasSubstr("http_listen"));
  // Mutual TLS lets gRPC serve any address without tokens (only holders
  // of a client certificate connect), but HTTP clients present none.
  const TestCertFiles* certs = TestCerts();
  ASSERT_NE(certs, nullptr);
  const CommandResult mtls = RunServerToExit(
      {"--listen=0.0.0.0:0", "--tls_cert=" + certs->server_cert,
       "--tls_key=" + certs->server_key, "--client_ca=" + certs->client_ca,
       "--http_listen=0.0.0.0:0"});
  EXPECT_EQ(mtls.exit_code, 2);
  EXPECT_THAT(mtls.err,
              AllOf(HasSubstr("http_listen"),
                    HasSubstr("HTTP clients need present no certificate")));
}

}  // namespace
}  // namespace ringfence::e2e
