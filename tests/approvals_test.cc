// The two-person rule (approvals.h): rules, held calls, approvals by a
// second principal, expiry, restarts, and the rule as an invariant over
// random operator sessions. Parameterized over every Store implementation.
#include "ringfence/approvals.h"

#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/fake_fleet.h"
#include "status_matchers.h"
#include "store_factory.h"
#include "test_release.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::ringfence::testing::StoreFactory;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kType[] = "channel-file/291";

constexpr char kPlan[] = R"pb(
  name: "two-person"
  policy {
    silence_timeout { seconds: 300 }
    apply_timeout { seconds: 300 }
    min_exposed_hosts: 3
  }
  stages {
    name: "canary"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 600 }
  }
  stages {
    name: "all"
    audience { percent: 100 }
    bake_time { seconds: 600 }
  }
)pb";

Release MakeRelease(const std::string& id, char digest) {
  return ::ringfence::testing::TestRelease(id, kType, digest);
}

ApprovalRule Rule(const std::string& content_type,
                  std::vector<GuardedAction> actions,
                  absl::Duration window = absl::ZeroDuration()) {
  ApprovalRule r;
  r.set_content_type(content_type);
  for (GuardedAction a : actions) r.add_actions(a);
  if (window > absl::ZeroDuration())
    *r.mutable_window() = ToProtoDuration(window);
  return r;
}

TEST(ApprovalRulesTest, BadRulesNameTheField) {
  struct Case {
    std::vector<ApprovalRule> rules;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{Rule("", {config::v1::GUARDED_PROMOTE})},
       "approval_rules[0].content_type"},
      {{Rule(kType, {})}, "approval_rules[0].actions: at least one"},
      {{Rule(kType, {config::v1::GUARDED_ACTION_UNSPECIFIED})},
       "approval_rules[0].actions[0]: unknown action"},
      {{Rule(kType, {static_cast<GuardedAction>(99)})},
       "approval_rules[0].actions[0]: unknown action"},
      {{Rule(kType,
             {config::v1::GUARDED_PROMOTE, config::v1::GUARDED_PROMOTE})},
       "approval_rules[0].actions[1]: \"promote\" is listed twice"},
      {{Rule("*", {config::v1::GUARDED_PROMOTE}),
        Rule("*", {config::v1::GUARDED_RESUME})},
       "approval_rules[1].content_type: a second rule for \"*\""},
      {{Rule(kType, {config::v1::GUARDED_PROMOTE}, absl::Seconds(30))},
       "approval_rules[0].window: must be within [1m, 168h]"},
      {{Rule(kType, {config::v1::GUARDED_PROMOTE}, absl::Hours(24 * 8))},
       "approval_rules[0].window"},
  };
  for (const Case& c : cases) {
    FleetConfig fleet;
    for (const ApprovalRule& r : c.rules) *fleet.add_approval_rules() = r;
    EXPECT_THAT(
        ValidateFleetConfig(fleet),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.message;
  }
  FleetConfig many;
  for (int i = 0; i <= kMaxApprovalRules; ++i) {
    *many.add_approval_rules() =
        Rule(absl::StrCat("type-", i), {config::v1::GUARDED_PROMOTE});
  }
  EXPECT_THAT(ValidateFleetConfig(many),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("approval_rules: at most 64")));
}

TEST(ApprovalRulesTest, TheShorterWindowOfTheMatchingRulesApplies) {
  FleetConfig fleet;
  *fleet.add_approval_rules() =
      Rule("*", {config::v1::GUARDED_PROMOTE, config::v1::GUARDED_RESUME},
           absl::Minutes(10));
  *fleet.add_approval_rules() =
      Rule(kType, {config::v1::GUARDED_PROMOTE}, absl::Hours(2));
  ASSERT_OK(ValidateFleetConfig(fleet));
  ApprovalBook book(fleet);
  ApprovalBook::Need n = book.Needs(kType, {config::v1::GUARDED_PROMOTE});
  EXPECT_THAT(n.guarded, ElementsAre(config::v1::GUARDED_PROMOTE));
  EXPECT_EQ(n.window, absl::Minutes(10));
  n = book.Needs("other/1", {config::v1::GUARDED_CLEAR_EMERGENCY_STOP,
                             config::v1::GUARDED_RESUME});
  EXPECT_THAT(n.guarded, ElementsAre(config::v1::GUARDED_RESUME));
  EXPECT_TRUE(ApprovalBook(FleetConfig())
                  .Needs(kType, {config::v1::GUARDED_PROMOTE})
                  .guarded.empty());
}

class ApprovalsTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    dir_ =
        (std::filesystem::path(::testing::TempDir()) /
         absl::StrCat(
             "approvals_test_", getpid(), "_", GetParam().name, "_",
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
            .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(ParseTextOrJson(kPlan, &plan_).ok());
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr)
        << "cannot open the " << GetParam().name << " store";
  }

  void TearDown() override {
    fleet_.reset();
    controller_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Create(std::vector<ApprovalRule> rules) {
    options_.fleet.clear_approval_rules();
    for (ApprovalRule& r : rules) *options_.fleet.add_approval_rules() = r;
    auto c = Controller::Create(store_.get(), &clock_, options_);
    ASSERT_OK(c);
    controller_ = std::move(*c);
    for (auto [id, d] : {std::pair{"good", 'a'}, std::pair{"next", 'b'},
                         std::pair{"bad", 'c'}}) {
      ASSERT_OK(controller_->CreateRelease(MakeRelease(id, d), "ci"));
    }
  }

  void Restart() {
    fleet_.reset();
    controller_.reset();
    if (GetParam().persistent) {
      store_.reset();
      store_ = GetParam().open(dir_);
      ASSERT_NE(store_, nullptr);
    }
    auto c = Controller::Create(store_.get(), &clock_, options_);
    ASSERT_OK(c);
    controller_ = std::move(*c);
  }

  StartRolloutRequest StartRequest(const std::string& release,
                                   const std::string& actor = "ci") {
    StartRolloutRequest req;
    req.release_id = release;
    req.plan = plan_;
    req.allow_no_baseline = true;
    req.actor = actor;
    req.reason = "test rollout";
    return req;
  }

  FakeFleet& Fleet() {
    if (fleet_ == nullptr) {
      FakeFleetOptions o;
      o.hosts = 100;
      o.dogfood_hosts = 10;
      o.content_type = kType;
      o.crash_per_host_hour = 0;
      fleet_ = std::make_unique<FakeFleet>(controller_.get(), &clock_, o);
      fleet_->SetBehavior("bad", {.boot_loop = true});
    }
    return *fleet_;
  }

  Rollout State(const std::string& id) {
    auto s = controller_->GetRollout(id);
    EXPECT_OK(s);
    return s.ok() ? s->rollout : Rollout();
  }

  std::vector<AuditEntry> Audit() {
    auto a = store_->ReadAudit(0, 100000);
    EXPECT_OK(a);
    return a.ok() ? *a : std::vector<AuditEntry>();
  }

  std::string dir_;
  FakeClock clock_;
  Plan plan_;
  ControllerOptions options_;
  StorePtr store_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<FakeFleet> fleet_;
};

TEST_P(ApprovalsTest, AGuardedPromoteWaitsForASecondPrincipal) {
  Create({Rule(kType, {config::v1::GUARDED_PROMOTE})});
  auto r = controller_->StartRollout(StartRequest("next"));
  ASSERT_OK(r);
  const Rollout before = State(r->id());
  const size_t audit_before = Audit().size();

  absl::StatusOr<Rollout> held =
      controller_->Promote(r->id(), "alice", "canary looks fine");
  ASSERT_THAT(held, StatusIs(absl::StatusCode::kFailedPrecondition,
                             AllOf(HasSubstr("promote of rollout"),
                                   HasSubstr("second principal"),
                                   HasSubstr("nothing was done"))));
  std::optional<ApprovalRequest> request =
      ApprovalRequestFromStatus(held.status());
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->action(), "promote");
  EXPECT_EQ(request->rollout_id(), r->id());
  EXPECT_EQ(request->requested_by(), "alice");
  EXPECT_THAT(request->guarded(), ElementsAre(config::v1::GUARDED_PROMOTE));
  EXPECT_EQ(
      FromProto(request->expires_at()) - FromProto(request->requested_at()),
      kDefaultApprovalWindow);
  // Nothing changed but the record of the request.
  EXPECT_EQ(State(r->id()).version(), before.version());
  EXPECT_EQ(State(r->id()).stage(), 0u);
  std::vector<AuditEntry> audit = Audit();
  ASSERT_EQ(audit.size(), audit_before + 1);
  EXPECT_EQ(audit.back().action(), "approval_requested");
  EXPECT_EQ(audit.back().approval_request().id(), request->id());
  ASSERT_EQ(controller_->ListApprovals().size(), 1u);

  // Not by the requester, whatever the reason.
  EXPECT_THAT(controller_->Approve(request->id(), "alice", "it's me"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("second, different principal")));
  EXPECT_EQ(State(r->id()).stage(), 0u);
  // Bad input changes nothing either.
  EXPECT_THAT(
      controller_->Approve(request->id(), "bob", ""),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reason")));
  EXPECT_THAT(controller_->Approve("apr-nope", "bob", "ok"),
              StatusIs(absl::StatusCode::kNotFound));

  auto approved = controller_->Approve(request->id(), "bob", "checked");
  ASSERT_OK(approved);
  ASSERT_TRUE(approved->rollout.has_value());
  EXPECT_EQ(approved->rollout->stage(), 1u);
  EXPECT_TRUE(approved->rollout->overridden());
  audit = Audit();
  EXPECT_EQ(audit.back().action(), "promote");
  EXPECT_EQ(audit.back().actor(), "alice");
  EXPECT_EQ(audit.back().approved_by(), "bob");
  EXPECT_EQ(audit.back().approval_request_id(), request->id());
  EXPECT_THAT(audit.back().reason(),
              AllOf(HasSubstr("canary looks fine"),
                    HasSubstr("approved by bob: checked")));
  EXPECT_TRUE(controller_->ListApprovals().empty());
  // Once.
  EXPECT_THAT(controller_->Approve(request->id(), "carol", "again"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(State(r->id()).stage(), 1u);
}

TEST_P(ApprovalsTest, UnguardedActionsAndOtherContentTypesAreNotHeld) {
  Create({Rule("other/1", {config::v1::GUARDED_PROMOTE}),
          Rule(kType, {config::v1::GUARDED_RESUME})});
  auto r = controller_->StartRollout(StartRequest("next"));
  ASSERT_OK(r);
  ASSERT_OK(controller_->Promote(r->id(), "alice", "not guarded here"));
  ASSERT_OK(controller_->Pause(r->id(), "alice", "look"));
  EXPECT_THAT(controller_->Resume(r->id(), "alice", "go"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("two-person rule for channel-file/291: "
                                 "resume")));
  ASSERT_OK(controller_->Abort(r->id(), "alice", "abort is never guarded"));
  // An abort left the resume request to fail on its own checks.
  const std::vector<ApprovalRequest> pending = controller_->ListApprovals();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_THAT(controller_->Approve(pending[0].id(), "bob", "ok"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("it is aborted")));
  EXPECT_EQ(State(r->id()).state(), config::v1::ABORTED);
}

TEST_P(ApprovalsTest, ExpiredRequestsCannotBeApproved) {
  Create({Rule("*", {config::v1::GUARDED_PROMOTE}, absl::Minutes(5))});
  auto r = controller_->StartRollout(StartRequest("next"));
  ASSERT_OK(r);
  auto held = controller_->Promote(r->id(), "alice", "go");
  std::optional<ApprovalRequest> request =
      ApprovalRequestFromStatus(held.status());
  ASSERT_TRUE(request.has_value());
  clock_.Advance(absl::Minutes(5));
  EXPECT_THAT(
      controller_->Approve(request->id(), "bob", "late"),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("expired")));
  EXPECT_TRUE(controller_->ListApprovals().empty());
  EXPECT_EQ(State(r->id()).stage(), 0u);
}

TEST_P(ApprovalsTest, PendingRequestsSurviveARestartAndSettledOnesStaySettled) {
  Create({Rule(kType, {config::v1::GUARDED_PROMOTE,
                       config::v1::GUARDED_CLEAR_EMERGENCY_STOP})});
  auto r = controller_->StartRollout(StartRequest("next"));
  ASSERT_OK(r);
  auto first = ApprovalRequestFromStatus(
      controller_->Promote(r->id(), "alice", "one").status());
  auto second = ApprovalRequestFromStatus(
      controller_->Promote(r->id(), "alice", "two").status());
  ASSERT_TRUE(first.has_value() && second.has_value());
  ASSERT_OK(controller_->RejectApproval(first->id(), "alice", "withdrawn"));
  ASSERT_OK(controller_->EmergencyStop(kType, "ops", "incident"));
  auto third = ApprovalRequestFromStatus(
      controller_->ClearEmergencyStop(kType, "ops", "fixed"));
  ASSERT_TRUE(third.has_value());
  ASSERT_OK(controller_->Approve(third->id(), "bob", "verified"));

  Restart();
  const std::vector<ApprovalRequest> pending = controller_->ListApprovals();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].id(), second->id());
  EXPECT_THAT(controller_->Approve(first->id(), "bob", "x"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(controller_->Approve(third->id(), "carol", "x"),
              StatusIs(absl::StatusCode::kNotFound));
  // The rollout halted with the emergency stop: the promote fails its own
  // check, and stays pending.
  EXPECT_THAT(controller_->Approve(second->id(), "bob", "x"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("it is halted")));
  EXPECT_EQ(controller_->ListApprovals().size(), 1u);
}

// A restart replays only the log's recent end (approvals.h): requests in
// their window survive it, whatever came long before them.
TEST_P(ApprovalsTest, ARestartFindsRecentRequestsBehindALongLog) {
  Create({Rule(kType, {config::v1::GUARDED_PROMOTE}, absl::Hours(24 * 7))});
  auto r = controller_->StartRollout(StartRequest("next"));
  ASSERT_OK(r);
  auto old = ApprovalRequestFromStatus(
      controller_->Promote(r->id(), "alice", "old").status());
  ASSERT_TRUE(old.has_value());
  // Ten days of pauses and resumes (resumes are not guarded here).
  for (int i = 0; i < 40; ++i) {
    clock_.Advance(absl::Hours(6));
    ASSERT_OK(controller_->Pause(r->id(), "ops", "look"));
    ASSERT_OK(controller_->Resume(r->id(), "ops", "go on"));
  }
  auto recent = ApprovalRequestFromStatus(
      controller_->Promote(r->id(), "alice", "recent").status());
  ASSERT_TRUE(recent.has_value());
  auto settled = ApprovalRequestFromStatus(
      controller_->Promote(r->id(), "carol", "settled").status());
  ASSERT_TRUE(settled.has_value());
  ASSERT_OK(controller_->RejectApproval(settled->id(), "bob", "no"));
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(controller_->Pause(r->id(), "ops", "look"));
    ASSERT_OK(controller_->Resume(r->id(), "ops", "go on"));
  }
  Restart();
  const std::vector<ApprovalRequest> pending = controller_->ListApprovals();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].id(), recent->id());
  ASSERT_OK(controller_->Approve(recent->id(), "bob", "ok"));
}

TEST_P(ApprovalsTest, AnApprovedPromoteStillObeysTheHaltRules) {
  Create({Rule(kType, {config::v1::GUARDED_PROMOTE})});
  auto r = controller_->StartRollout(StartRequest("bad"));
  ASSERT_OK(r);
  auto request = ApprovalRequestFromStatus(
      controller_->Promote(r->id(), "alice", "ship it").status());
  ASSERT_TRUE(request.has_value());
  for (int i = 0; i < 60 && State(r->id()).state() != config::v1::HALTED; ++i) {
    ASSERT_OK(Fleet().Step(absl::Seconds(10)));
  }
  ASSERT_EQ(State(r->id()).state(), config::v1::HALTED);
  EXPECT_THAT(controller_->Approve(request->id(), "bob", "ok"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("it is halted")));
  EXPECT_EQ(State(r->id()).state(), config::v1::HALTED);
}

TEST_P(ApprovalsTest, RiskyStartsWaitAndRunAsAskedOnceApproved) {
  Create({Rule("*", {config::v1::GUARDED_START_WITH_BASELINE,
                     config::v1::GUARDED_DISABLE_BUILTIN_SIGNAL})});
  // No baseline at all (the first release) is a non-default baseline.
  auto held = controller_->StartRollout(StartRequest("next", "publisher"));
  ASSERT_THAT(held, StatusIs(absl::StatusCode::kFailedPrecondition,
                             HasSubstr("starting a rollout of release next")));
  auto request = ApprovalRequestFromStatus(held.status());
  ASSERT_TRUE(request.has_value());
  EXPECT_THAT(request->guarded(),
              ElementsAre(config::v1::GUARDED_START_WITH_BASELINE));
  auto listed = controller_->ListRollouts();
  ASSERT_OK(listed);
  EXPECT_TRUE(listed->empty());

  auto approved = controller_->Approve(request->id(), "bob", "first release");
  ASSERT_OK(approved);
  ASSERT_TRUE(approved->rollout.has_value());
  EXPECT_EQ(approved->rollout->release_id(), "next");
  EXPECT_EQ(approved->rollout->plan().name(), "two-person");
  EXPECT_EQ(Audit().back().action(), "start");
  EXPECT_EQ(Audit().back().approved_by(), "bob");
  ASSERT_OK(controller_->Abort(approved->rollout->id(), "ops", "done"));

  // Switching a built-in signal off, with the default baseline (none: so
  // both guards).
  StartRolloutRequest quiet = StartRequest("good", "publisher");
  SignalRule* rule = quiet.plan.mutable_policy()->add_signals();
  rule->set_signal("unclean_reboot");
  rule->set_disabled(true);
  rule->set_disabled_reason("agent 7.11 reports every reboot as unclean");
  request =
      ApprovalRequestFromStatus(controller_->StartRollout(quiet).status());
  ASSERT_TRUE(request.has_value());
  EXPECT_THAT(request->guarded(),
              ElementsAre(config::v1::GUARDED_START_WITH_BASELINE,
                          config::v1::GUARDED_DISABLE_BUILTIN_SIGNAL));
  EXPECT_EQ(request->start().plan().policy().signals_size(),
            quiet.plan.policy().signals_size());
}

// The rule as an invariant: random sessions of three principals calling
// guarded and unguarded actions, approving, rejecting, letting requests
// expire and restarting the controller. Whatever happens, (1) every audit
// entry of a guarded kind names a request and an approver other than its
// actor, approved before the request expired; (2) a request authorizes at
// most one action entry (a promote_to_completion: one run); (3) a held
// call changes no rollout.
TEST_P(ApprovalsTest, NoGuardedActionHappensWithoutASecondPrincipal) {
  const int kSessions = GetParam().name == "postgres" ? 4 : 12;
  for (int session = 0; session < kSessions; ++session) {
    SCOPED_TRACE(absl::StrCat("session ", session));
    TearDown();
    SetUp();
    Create({Rule("*",
                 {config::v1::GUARDED_PROMOTE, config::v1::GUARDED_RESUME,
                  config::v1::GUARDED_CLEAR_EMERGENCY_STOP,
                  config::v1::GUARDED_START_WITH_BASELINE},
                 absl::Minutes(30))});
    std::mt19937 rng(1000 + session);
    const std::vector<std::string> people = {"alice", "bob", "carol"};
    auto pick = [&](int n) { return static_cast<int>(rng() % n); };
    std::vector<std::string> ids;
    for (int step = 0; step < 40; ++step) {
      const std::string who = people[pick(3)];
      std::string rollout = ids.empty() ? "" : ids[pick(ids.size())];
      const uint64_t version_before =
          rollout.empty() ? 0 : State(rollout).version();
      absl::Status s;
      switch (pick(9)) {
        case 0: {
          auto r = controller_->StartRollout(
              StartRequest(pick(2) ? "next" : "good", who));
          s = r.status();
          if (r.ok()) ids.push_back(r->id());
          break;
        }
        case 1:
          if (!rollout.empty()) {
            s = controller_->Promote(rollout, who, "promote").status();
          }
          break;
        case 2:
          if (!rollout.empty()) {
            s = controller_->Pause(rollout, who, "pause").status();
          }
          break;
        case 3:
          if (!rollout.empty()) {
            s = controller_->Resume(rollout, who, "resume").status();
          }
          break;
        case 4:
          if (!rollout.empty()) {
            s = controller_->Abort(rollout, who, "abort").status();
          }
          break;
        case 5:
          s = pick(2) ? controller_->EmergencyStop(kType, who, "stop")
                      : controller_->ClearEmergencyStop(kType, who, "clear");
          break;
        case 6:
        case 7: {
          std::vector<ApprovalRequest> pending = controller_->ListApprovals();
          if (pending.empty()) break;
          const ApprovalRequest& p = pending[pick(pending.size())];
          if (pick(4) == 0) {
            s = controller_->RejectApproval(p.id(), who, "no");
          } else {
            auto a = controller_->Approve(p.id(), who, "yes");
            if (a.ok() && p.action() == "start" && a->rollout.has_value()) {
              ids.push_back(a->rollout->id());
            }
            if (who == p.requested_by()) {
              EXPECT_THAT(a, StatusIs(absl::StatusCode::kPermissionDenied));
            }
          }
          break;
        }
        case 8:
          if (pick(2)) {
            clock_.Advance(absl::Minutes(pick(40)));
          } else {
            Restart();
          }
          break;
      }
      if (ApprovalRequestFromStatus(s).has_value() && !rollout.empty()) {
        EXPECT_EQ(State(rollout).version(), version_before);
      }
    }
    absl::flat_hash_map<std::string, ApprovalRequest> requests;
    absl::flat_hash_map<std::string, int> uses;
    for (const AuditEntry& e : Audit()) {
      if (e.action() == "approval_requested") {
        requests[e.approval_request().id()] = e.approval_request();
        continue;
      }
      // A start is guarded when it has no baseline (these starts never
      // name one; the default exists once a rollout completed).
      const bool guarded = e.action() == "promote" || e.action() == "resume" ||
                           e.action() == "clear_emergency_stop" ||
                           (e.action() == "start" &&
                            absl::StrContains(e.reason(), "; no baseline ("));
      if (!guarded) continue;
      SCOPED_TRACE(absl::StrCat("audit entry ", e.seq(), " ", e.action()));
      ASSERT_FALSE(e.approval_request_id().empty());
      auto it = requests.find(e.approval_request_id());
      ASSERT_NE(it, requests.end());
      EXPECT_NE(e.approved_by(), e.actor());
      EXPECT_FALSE(e.approved_by().empty());
      EXPECT_EQ(it->second.requested_by(), e.actor());
      EXPECT_LT(FromProto(e.at()), FromProto(it->second.expires_at()));
      if (it->second.action() != "promote_to_completion") {
        EXPECT_EQ(++uses[e.approval_request_id()], 1);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Stores, ApprovalsTest,
    ::testing::ValuesIn(::ringfence::testing::AllStoreFactories()),
    [](const ::testing::TestParamInfo<StoreFactory>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace ringfence
