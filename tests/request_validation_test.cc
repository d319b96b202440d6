// The bounds of every request field of the ringfence API
// (service/request_validation.h): one case per field and bound, each
// refused with INVALID_ARGUMENT naming the field, with a short message.
#include "service/request_validation.h"

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "ringfence/model.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kDigest[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kMiB(1 << 20, 'x');

Release ValidRelease() {
  Release r;
  r.set_id("cf291-1");
  r.set_content_type("channel-file/291");
  r.set_version("291.1");
  r.set_digest_sha256(kDigest);
  r.set_size_bytes(40000);
  r.set_fetch_url("https://updates.example/cf291-1");
  r.mutable_targeting()->set_min_agent_version("7.11");
  r.mutable_targeting()->add_platforms("windows");
  r.mutable_created_at()->set_seconds(1721347200);
  return r;
}

Plan ValidPlan() {
  Plan plan;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        name: "p"
        stages {
          name: "dogfood"
          audience { hosts: "h1" labels: "ring:dogfood" }
          bake_time { seconds: 60 }
        }
        stages {
          name: "fleet"
          audience { percent: 100 }
          bake_time { seconds: 60 }
        }
      )pb",
      &plan));
  return plan;
}

v1::CreateReleaseRequest CreateReleaseReq() {
  v1::CreateReleaseRequest r;
  *r.mutable_release() = ValidRelease();
  return r;
}
v1::ValidateReleaseRequest ValidateReleaseReq() {
  v1::ValidateReleaseRequest r;
  *r.mutable_release() = ValidRelease();
  return r;
}
v1::GetReleaseRequest GetReleaseReq() {
  v1::GetReleaseRequest r;
  r.set_release_id("cf291-1");
  return r;
}
v1::ListReleasesRequest ListReleasesReq() {
  v1::ListReleasesRequest r;
  r.set_content_type("channel-file/291");
  return r;
}
v1::StartRolloutRequest StartRolloutReq() {
  v1::StartRolloutRequest r;
  r.set_rollout_id("cf291@1");
  r.set_release_id("cf291-1");
  *r.mutable_plan() = ValidPlan();
  r.set_baseline_release_id("cf291-0");
  r.set_reason("weekly");
  return r;
}
v1::GetRolloutRequest GetRolloutReq() {
  v1::GetRolloutRequest r;
  r.set_rollout_id("cf291@1");
  r.set_include_decisions(true);
  r.set_decisions_after_seq(UINT64_MAX);  // any value: past the last
  return r;
}
v1::ListRolloutsRequest ListRolloutsReq() {
  v1::ListRolloutsRequest r;
  r.set_content_type("channel-file/291");
  r.set_release_id("cf291-1");
  for (int s = config::v1::PENDING; s <= config::v1::COMPLETED; ++s) {
    r.add_states(static_cast<config::v1::RolloutState>(s));
  }
  return r;
}
v1::WatchRolloutRequest WatchRolloutReq() {
  v1::WatchRolloutRequest r;
  r.set_rollout_id("cf291@1");
  r.mutable_poll_interval()->set_nanos(100000000);
  return r;
}
v1::RolloutActionRequest ActionReq() {
  v1::RolloutActionRequest r;
  r.set_rollout_id("cf291@1");
  r.set_reason(std::string(kMaxReasonBytes, 'r'));
  return r;
}
v1::EmergencyStopRequest StopReq() {
  v1::EmergencyStopRequest r;
  r.set_content_type("channel-file/291");
  r.set_reason("bad file");
  return r;
}
v1::ClearEmergencyStopRequest ClearStopReq() {
  v1::ClearEmergencyStopRequest r;
  r.set_content_type("channel-file/291");
  r.set_reason("fixed");
  return r;
}
v1::CheckGateRequest CheckGateReq() {
  v1::CheckGateRequest r;
  r.set_release_id("cf291-1");
  r.set_stage("late-track");
  return r;
}
v1::ListAuditRequest ListAuditReq() {
  v1::ListAuditRequest r;
  r.set_after_seq(UINT64_MAX);
  r.set_limit(1000);
  r.set_rollout_id("web-1");
  return r;
}
v1::GetAssignmentRequest GetAssignmentReq() {
  v1::GetAssignmentRequest r;
  r.set_host_id("host-1");
  r.set_tenant("acme");
  r.add_labels("ring:dogfood");
  r.set_agent_version("7.11.0");
  r.set_platform("windows");
  r.add_content_types("channel-file/291");
  return r;
}
v1::ReportTelemetryRequest ReportReq() {
  v1::ReportTelemetryRequest r;
  v1::TelemetryEvent* e = r.add_events();
  e->set_host_id("host-1");
  e->set_type(v1::APPLIED);
  e->set_release_id("cf291-1");
  e->mutable_time()->set_seconds(1721347200);
  e = r.add_events();
  e->set_host_id("host-1");
  e->set_type(v1::SIGNAL);
  e->set_signal("my_signal");
  return r;
}
constexpr size_t kMaxEvents = 1000;

struct Case {
  const char* name;
  std::function<absl::Status()> validate;
  const char* message;  // "field: reason" (a prefix of it)
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Validates `request` (a valid one) after `mutate`.
template <typename Request, typename Mutate>
std::function<absl::Status()> After(Request (*make)(), Mutate mutate) {
  return [make, mutate] {
    Request request = make();
    mutate(&request);
    return ValidateRequest(request);
  };
}
template <typename Mutate>
std::function<absl::Status()> AfterReport(Mutate mutate) {
  return [mutate] {
    v1::ReportTelemetryRequest request = ReportReq();
    mutate(&request);
    return ValidateRequest(request, kMaxEvents);
  };
}

TEST(ValidateRequestTest, ValidRequestsPass) {
  EXPECT_OK(ValidateRequest(CreateReleaseReq()));
  EXPECT_OK(ValidateRequest(ValidateReleaseReq()));
  EXPECT_OK(ValidateRequest(GetReleaseReq()));
  EXPECT_OK(ValidateRequest(ListReleasesReq()));
  EXPECT_OK(ValidateRequest(v1::ListReleasesRequest()));
  EXPECT_OK(ValidateRequest(StartRolloutReq()));
  v1::StartRolloutRequest generated_id = StartRolloutReq();
  generated_id.clear_rollout_id();
  generated_id.clear_baseline_release_id();
  EXPECT_OK(ValidateRequest(generated_id));
  EXPECT_OK(ValidateRequest(GetRolloutReq()));
  EXPECT_OK(ValidateRequest(ListRolloutsReq()));
  EXPECT_OK(ValidateRequest(v1::ListRolloutsRequest()));
  EXPECT_OK(ValidateRequest(WatchRolloutReq()));
  EXPECT_OK(ValidateRequest(ActionReq()));
  EXPECT_OK(ValidateRequest(StopReq()));
  EXPECT_OK(ValidateRequest(ClearStopReq()));
  EXPECT_OK(ValidateRequest(CheckGateReq()));
  v1::CheckGateRequest whole_fleet = CheckGateReq();
  whole_fleet.clear_stage();
  EXPECT_OK(ValidateRequest(whole_fleet));
  EXPECT_OK(ValidateRequest(ListAuditReq()));
  EXPECT_OK(ValidateRequest(v1::ListAuditRequest()));
  EXPECT_OK(ValidateRequest(GetAssignmentReq()));
  EXPECT_OK(ValidateRequest(ReportReq(), kMaxEvents));
  v1::TelemetryBatch batch;
  *batch.mutable_events() = ReportReq().events();
  EXPECT_OK(ValidateRequest(batch, kMaxEvents));
}

class InvalidRequestTest : public ::testing::TestWithParam<Case> {};

TEST_P(InvalidRequestTest, NamesTheFieldInAShortMessage) {
  const absl::Status s = GetParam().validate();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr(GetParam().message)));
  // Whatever the request held, the error is short enough for any client.
  EXPECT_LT(s.message().size(), 600u) << s.message();
}

using Rel = v1::CreateReleaseRequest;
using Start = v1::StartRolloutRequest;
using Batch = v1::ReportTelemetryRequest;

const Case kCases[] = {
    // ---- CreateRelease: every field of the release.
    {"CreateReleaseId", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->set_id(kMiB);
     }),
     "release.id: must be at most 128 characters (got 1048576)"},
    {"CreateReleaseIdChars", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->set_id("cf 1");
     }),
     "release.id: must match"},
    {"CreateReleaseContentType", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->set_content_type(kMiB);
     }),
     "release.content_type: must be at most 128 characters"},
    {"CreateReleaseVersion", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->set_version(kMiB);
     }),
     "release.version: must be at most 128 bytes (got 1048576)"},
    {"CreateReleaseDigest", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->set_digest_sha256(kMiB);
     }),
     "release.digest_sha256: must be 64 lower-case hex characters (got "
     "1048576 characters)"},
    {"CreateReleaseSizeZero", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->set_size_bytes(0);
     }),
     "release.size_bytes: must be > 0"},
    {"CreateReleaseSizeMax", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->set_size_bytes(UINT64_MAX);
     }),
     "release.size_bytes: must be at most 1099511627776"},
    {"CreateReleaseSignature", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->set_signature(kMiB);
     }),
     "release.signature: must be at most 1024 bytes (got 1048576)"},
    {"CreateReleaseFetchUrl", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->set_fetch_url(std::string(10 << 20, 'u'));
     }),
     "release.fetch_url: must be at most 2048 bytes (got 10485760)"},
    {"CreateReleaseFetchUrlControl", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->set_fetch_url("https://u.example/\r\nx: y");
     }),
     "release.fetch_url: must not contain control characters"},
    {"CreateReleaseMinAgentVersion", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->mutable_targeting()->set_min_agent_version(kMiB);
     }),
     "release.targeting.min_agent_version: must be a dotted version like "
     "7.11.0 (got \"xxx"},
    {"CreateReleaseMaxAgentVersion", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->mutable_targeting()->set_max_agent_version("7.x");
     }),
     "release.targeting.max_agent_version: must be a dotted version"},
    {"CreateReleasePlatforms", After(&CreateReleaseReq, [](Rel* r) {
       for (int i = 0; i < kMaxPlatforms; ++i) {
         r->mutable_release()->mutable_targeting()->add_platforms("p");
       }
     }),
     "release.targeting.platforms: at most 32 platforms (got 33)"},
    {"CreateReleasePlatform", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->mutable_targeting()->set_platforms(0, kMiB);
     }),
     "release.targeting.platforms[0]: must be at most 128 characters"},
    {"CreateReleaseCreatedAt", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->mutable_created_at()->set_seconds(INT64_MAX);
     }),
     "release.created_at: must be between 0001-01-01T00:00:00Z and "
     "9999-12-31T23:59:59Z"},
    {"CreateReleaseCreatedAtNanos", After(&CreateReleaseReq, [](Rel* r) {
       r->mutable_release()->mutable_created_at()->set_nanos(-5);
     }),
     "release.created_at: nanos must be in [0, 999999999] (got -5)"},
    {"ValidateReleaseFetchUrl",
     After(&ValidateReleaseReq,
           [](v1::ValidateReleaseRequest* r) {
             r->mutable_release()->set_fetch_url(std::string(10 << 20, 'u'));
           }),
     "release.fetch_url: must be at most 2048 bytes"},
    {"ValidateReleaseSize",
     After(&ValidateReleaseReq,
           [](v1::ValidateReleaseRequest* r) {
             r->mutable_release()->set_size_bytes(UINT64_MAX);
           }),
     "release.size_bytes: must be at most"},
    // ---- GetRelease, ListReleases.
    {"GetReleaseIdEmpty",
     After(&GetReleaseReq,
           [](v1::GetReleaseRequest* r) { r->clear_release_id(); }),
     "release_id: must not be empty"},
    {"GetReleaseId",
     After(&GetReleaseReq,
           [](v1::GetReleaseRequest* r) { r->set_release_id(kMiB); }),
     "release_id: must be at most 128 characters (got 1048576)"},
    {"ListReleasesContentType",
     After(&ListReleasesReq,
           [](v1::ListReleasesRequest* r) { r->set_content_type(kMiB); }),
     "content_type: must be at most 128 characters (got 1048576)"},
    // ---- StartRollout.
    {"StartRolloutId",
     After(&StartRolloutReq, [](Start* r) { r->set_rollout_id(kMiB); }),
     "rollout_id: must be at most 128 characters (got 1048576)"},
    {"StartRolloutReleaseIdEmpty",
     After(&StartRolloutReq, [](Start* r) { r->clear_release_id(); }),
     "release_id: must not be empty"},
    {"StartRolloutReleaseId",
     After(&StartRolloutReq, [](Start* r) { r->set_release_id(kMiB); }),
     "release_id: must be at most 128 characters"},
    {"StartRolloutBaselineId",
     After(&StartRolloutReq, [](Start* r) { r->set_baseline_release_id(kMiB); }),
     "baseline_release_id: must be at most 128 characters (got 1048576)"},
    {"StartRolloutBaselineIdChars",
     After(&StartRolloutReq,
           [](Start* r) { r->set_baseline_release_id("cf\n0"); }),
     "baseline_release_id: must match [A-Za-z0-9._:/@-]+ (got \"cf\\n0\")"},
    {"StartRolloutReasonEmpty",
     After(&StartRolloutReq, [](Start* r) { r->clear_reason(); }),
     "reason: must not be empty"},
    {"StartRolloutReason",
     After(&StartRolloutReq, [](Start* r) { r->set_reason(kMiB); }),
     "reason: must be at most 1024 characters (got 1048576)"},
    {"StartRolloutPlanMissing",
     After(&StartRolloutReq, [](Start* r) { r->clear_plan(); }),
     "plan.stages: must have at least one stage"},
    {"StartRolloutPlanName",
     After(&StartRolloutReq,
           [](Start* r) { r->mutable_plan()->set_name(kMiB); }),
     "plan.name: must be at most 128 characters (got 1048576)"},
    {"StartRolloutPlanStages", After(&StartRolloutReq, [](Start* r) {
       Plan* p = r->mutable_plan();
       while (p->stages_size() <= kMaxStages) *p->add_stages() = p->stages(0);
     }),
     "plan.stages: at most 64 stages (got 65)"},
    {"StartRolloutPlanStageName", After(&StartRolloutReq, [](Start* r) {
       r->mutable_plan()->mutable_stages(1)->set_name(kMiB);
     }),
     "plan.stages[1].name: must be at most 128 characters"},
    {"StartRolloutPlanHosts", After(&StartRolloutReq, [](Start* r) {
       Audience* a = r->mutable_plan()->mutable_stages(0)->mutable_audience();
       while (a->hosts_size() <= kMaxPlanHosts) {
         a->add_hosts(absl::StrCat("h", a->hosts_size() + 1));
       }
     }),
     "plan.stages[0].audience.hosts: at most 1000 hosts in all stages "
     "together (got 1001"},
    {"StartRolloutPlanHost", After(&StartRolloutReq, [](Start* r) {
       r->mutable_plan()->mutable_stages(0)->mutable_audience()->set_hosts(
           0, kMiB);
     }),
     "plan.stages[0].audience.hosts[0]: must be at most 128 characters"},
    {"StartRolloutPlanLabels", After(&StartRolloutReq, [](Start* r) {
       Audience* a = r->mutable_plan()->mutable_stages(0)->mutable_audience();
       while (a->labels_size() <= kMaxAudienceLabels) a->add_labels("l");
     }),
     "plan.stages[0].audience.labels: at most 64 labels (got 65)"},
    {"StartRolloutPlanLabel", After(&StartRolloutReq, [](Start* r) {
       r->mutable_plan()->mutable_stages(0)->mutable_audience()->set_labels(
           0, kMiB);
     }),
     "plan.stages[0].audience.labels[0]: must be at most 128 characters"},
    {"StartRolloutPlanSignals", After(&StartRolloutReq, [](Start* r) {
       GatePolicy* p = r->mutable_plan()->mutable_policy();
       for (int i = 0; i <= kMaxSignals; ++i) {
         SignalRule* rule = p->add_signals();
         rule->set_signal(absl::StrCat("s", i));
         rule->set_max_affected_hosts(1);
       }
     }),
     "plan.policy.signals: at most 8 signals (got 9)"},
    {"StartRolloutPlanSignalName", After(&StartRolloutReq, [](Start* r) {
       SignalRule* rule = r->mutable_plan()->mutable_policy()->add_signals();
       rule->set_signal(kMiB);
     }),
     "plan.policy.signals[0].signal: must be at most 64 characters (got "
     "1048576)"},
    {"StartRolloutPlanDisabledReason", After(&StartRolloutReq, [](Start* r) {
       SignalRule* rule = r->mutable_plan()->mutable_policy()->add_signals();
       rule->set_signal("apply_stuck");
       rule->set_disabled(true);
       rule->set_disabled_reason(kMiB);
     }),
     "plan.policy.signals[0].disabled_reason: must be at most 1024 "
     "characters (got 1048576)"},
    {"StartRolloutPlanBytes", After(&StartRolloutReq, [](Start* r) {
       Plan* p = r->mutable_plan();
       const Stage last = p->stages(1);
       p->mutable_stages()->RemoveLast();
       while (p->stages_size() < kMaxStages - 1) {
         Stage* s = p->add_stages();
         s->set_name(absl::StrCat("s", p->stages_size()));
         s->mutable_audience()->set_early_track(true);
         *s->mutable_bake_time() = last.bake_time();
         for (int i = 0; i < kMaxAudienceLabels; ++i) {
           s->mutable_audience()->add_labels(
               absl::StrCat(i, std::string(120, 'l')));
         }
       }
       *p->add_stages() = last;
     }),
     "plan.stages: the plan is "},
    // ---- GetRollout, ListRollouts, WatchRollout.
    {"GetRolloutId",
     After(&GetRolloutReq,
           [](v1::GetRolloutRequest* r) { r->set_rollout_id(kMiB); }),
     "rollout_id: must be at most 128 characters (got 1048576)"},
    {"ListRolloutsContentType",
     After(&ListRolloutsReq,
           [](v1::ListRolloutsRequest* r) { r->set_content_type(kMiB); }),
     "content_type: must be at most 128 characters"},
    {"ListRolloutsReleaseId",
     After(&ListRolloutsReq,
           [](v1::ListRolloutsRequest* r) { r->set_release_id("a b"); }),
     "release_id: must match"},
    {"ListRolloutsUnknownState",
     After(&ListRolloutsReq,
           [](v1::ListRolloutsRequest* r) {
             r->clear_states();
             r->add_states(static_cast<config::v1::RolloutState>(99));
           }),
     "states[0]: must be one of PENDING, RUNNING, PAUSED, HALTED, ABORTED, "
     "COMPLETED (got 99)"},
    {"ListRolloutsUnspecifiedState",
     After(&ListRolloutsReq,
           [](v1::ListRolloutsRequest* r) {
             r->add_states(config::v1::ROLLOUT_STATE_UNSPECIFIED);
           }),
     "states: at most 6 states (got 7)"},
    {"ListRolloutsStateZero",
     After(&ListRolloutsReq,
           [](v1::ListRolloutsRequest* r) {
             r->set_states(1, config::v1::ROLLOUT_STATE_UNSPECIFIED);
           }),
     "states[1]: must be one of"},
    {"WatchRolloutId",
     After(&WatchRolloutReq,
           [](v1::WatchRolloutRequest* r) { r->set_rollout_id(kMiB); }),
     "rollout_id: must be at most 128 characters"},
    {"WatchRolloutPollTooShort",
     After(&WatchRolloutReq,
           [](v1::WatchRolloutRequest* r) {
             r->mutable_poll_interval()->set_nanos(1000000);
           }),
     "poll_interval: must be in [100ms, 1h]"},
    {"WatchRolloutPollTooLong",
     After(&WatchRolloutReq,
           [](v1::WatchRolloutRequest* r) {
             r->mutable_poll_interval()->set_seconds(3601);
           }),
     "poll_interval: must be in [100ms, 1h]"},
    {"WatchRolloutPollMalformed",
     After(&WatchRolloutReq,
           [](v1::WatchRolloutRequest* r) {
             r->mutable_poll_interval()->set_seconds(2);
             r->mutable_poll_interval()->set_nanos(-500000000);
           }),
     "poll_interval: must not be negative"},
    // ---- Pause/Resume/Abort/Promote, EmergencyStop, ClearEmergencyStop.
    {"ActionRolloutId",
     After(&ActionReq,
           [](v1::RolloutActionRequest* r) { r->set_rollout_id(kMiB); }),
     "rollout_id: must be at most 128 characters"},
    {"ActionReasonEmpty",
     After(&ActionReq, [](v1::RolloutActionRequest* r) { r->clear_reason(); }),
     "reason: must not be empty"},
    {"ActionReason",
     After(&ActionReq,
           [](v1::RolloutActionRequest* r) { r->mutable_reason()->push_back('r'); }),
     "reason: must be at most 1024 characters (got 1025)"},
    {"EmergencyStopContentType",
     After(&StopReq,
           [](v1::EmergencyStopRequest* r) { r->set_content_type(kMiB); }),
     "content_type: must be at most 128 characters"},
    {"EmergencyStopContentTypeEmpty",
     After(&StopReq,
           [](v1::EmergencyStopRequest* r) { r->clear_content_type(); }),
     "content_type: must not be empty"},
    {"EmergencyStopReason",
     After(&StopReq, [](v1::EmergencyStopRequest* r) { r->set_reason(kMiB); }),
     "reason: must be at most 1024 characters"},
    {"ClearEmergencyStopContentType",
     After(&ClearStopReq,
           [](v1::ClearEmergencyStopRequest* r) {
             r->set_content_type("a\tb");
           }),
     "content_type: must match"},
    {"ClearEmergencyStopReason",
     After(&ClearStopReq,
           [](v1::ClearEmergencyStopRequest* r) { r->clear_reason(); }),
     "reason: must not be empty"},
    // ---- CheckGate: the independent client's 1 MiB stage.
    {"CheckGateStage",
     After(&CheckGateReq, [](v1::CheckGateRequest* r) { r->set_stage(kMiB); }),
     "stage: must be at most 128 characters (got 1048576)"},
    {"CheckGateStageChars",
     After(&CheckGateReq,
           [](v1::CheckGateRequest* r) {
             r->set_stage(std::string(128, '\xff'));
           }),
     "stage: must match [A-Za-z0-9._:/@-]+ (got \"\\xff\\xff"},
    {"CheckGateReleaseId",
     After(&CheckGateReq,
           [](v1::CheckGateRequest* r) { r->set_release_id(kMiB); }),
     "release_id: must be at most 128 characters"},
    // ---- ListAudit.
    {"ListAuditLimit", After(&ListAuditReq,
                             [](v1::ListAuditRequest* r) { r->set_limit(1001); }),
     "limit: must be at most 1000 (got 1001)"},
    {"ListAuditRolloutId",
     After(&ListAuditReq,
           [](v1::ListAuditRequest* r) { r->set_rollout_id(kMiB); }),
     "rollout_id: must be at most 128 characters (got 1048576)"},
    // ---- GetAssignment.
    {"GetAssignmentHostId",
     After(&GetAssignmentReq,
           [](v1::GetAssignmentRequest* r) { r->set_host_id(kMiB); }),
     "host_id: must be at most 128 characters (got 1048576)"},
    {"GetAssignmentTenant",
     After(&GetAssignmentReq,
           [](v1::GetAssignmentRequest* r) { r->set_tenant(kMiB); }),
     "tenant: must be at most 128 characters"},
    {"GetAssignmentLabels",
     After(&GetAssignmentReq,
           [](v1::GetAssignmentRequest* r) {
             while (r->labels_size() <= 64) r->add_labels("l");
           }),
     "labels: at most 64 labels (got 65)"},
    {"GetAssignmentLabel",
     After(&GetAssignmentReq,
           [](v1::GetAssignmentRequest* r) { r->set_labels(0, kMiB); }),
     "labels[0]: must be at most 128 characters"},
    {"GetAssignmentAgentVersion",
     After(&GetAssignmentReq,
           [](v1::GetAssignmentRequest* r) { r->set_agent_version(kMiB); }),
     "agent_version: must be a dotted version like 7.11.0 (got \"xxx"},
    {"GetAssignmentPlatform",
     After(&GetAssignmentReq,
           [](v1::GetAssignmentRequest* r) { r->set_platform(kMiB); }),
     "platform: must be at most 128 characters"},
    {"GetAssignmentNoContentTypes",
     After(&GetAssignmentReq,
           [](v1::GetAssignmentRequest* r) { r->clear_content_types(); }),
     "content_types: must name at least one content type"},
    {"GetAssignmentContentTypes",
     After(&GetAssignmentReq,
           [](v1::GetAssignmentRequest* r) {
             while (r->content_types_size() <= 64) r->add_content_types("c");
           }),
     "content_types: at most 64 (got 65)"},
    {"GetAssignmentContentType",
     After(&GetAssignmentReq,
           [](v1::GetAssignmentRequest* r) {
             r->set_content_types(0, kMiB);
           }),
     "content_types[0]: must be at most 128 characters"},
    // ---- ReportTelemetry / StreamTelemetry batches.
    {"TelemetryEvents", AfterReport([](Batch* r) {
       while (static_cast<size_t>(r->events_size()) <= kMaxEvents) {
         *r->add_events() = r->events(0);
       }
     }),
     "events: at most 1000 events per batch (got 1001)"},
    {"TelemetryHostId",
     AfterReport([](Batch* r) { r->mutable_events(1)->set_host_id(kMiB); }),
     "events[1].host_id: must be at most 128 characters (got 1048576)"},
    {"TelemetryType", AfterReport([](Batch* r) {
       r->mutable_events(1)->set_type(static_cast<v1::EventType>(99));
     }),
     "events[1].type: must be one of APPLYING, APPLIED, HEARTBEAT, CRASH, "
     "BOOT, SIGNAL (got 99)"},
    {"TelemetryTypeUnset", AfterReport([](Batch* r) {
       r->mutable_events(0)->clear_type();
     }),
     "events[0].type: must be one of"},
    {"TelemetryTime", AfterReport([](Batch* r) {
       r->mutable_events(0)->mutable_time()->set_seconds(INT64_MIN);
     }),
     "events[0].time: must be between 0001-01-01T00:00:00Z and "
     "9999-12-31T23:59:59Z"},
    {"TelemetryTimeNanos", AfterReport([](Batch* r) {
       r->mutable_events(0)->mutable_time()->set_nanos(1000000000);
     }),
     "events[0].time: nanos must be in [0, 999999999]"},
    {"TelemetryReleaseId", AfterReport([](Batch* r) {
       r->mutable_events(0)->set_release_id(kMiB);
     }),
     "events[0].release_id: must be at most 128 characters"},
    {"TelemetrySignalName", AfterReport([](Batch* r) {
       r->mutable_events(1)->set_signal(kMiB);
     }),
     "events[1].signal: a signal event's name must match [a-z0-9_]{1,64} "
     "(got 1048576 characters)"},
    {"TelemetryCrashSignature", AfterReport([](Batch* r) {
       r->mutable_events(1)->set_type(v1::CRASH);
       r->mutable_events(1)->set_signal(kMiB);
     }),
     "events[1].signal: must be at most 256 characters"},
    {"TelemetryBatchMessage",
     [] {
       v1::TelemetryBatch batch;
       *batch.mutable_events() = ReportReq().events();
       batch.mutable_events(0)->set_host_id(kMiB);
       return ValidateRequest(batch, kMaxEvents);
     },
     "events[0].host_id: must be at most 128 characters"},
};

INSTANTIATE_TEST_SUITE_P(EveryField, InvalidRequestTest,
                         ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace ringfence
