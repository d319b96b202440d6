#include "service/metrics.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/model.h"
#include "ringfence/store.h"

namespace ringfence {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPlan[] = R"pb(
  name: "metrics"
  stages {
    name: "all"
    audience { percent: 100 }
    bake_time { seconds: 3600 }
  }
)pb";

class ServerMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = NewMemoryStore();
    auto c = Controller::Create(store_.get(), &clock_, {});
    ASSERT_TRUE(c.ok()) << c.status();
    controller_ = *std::move(c);
    ASSERT_TRUE(ParseTextOrJson(kPlan, &plan_).ok());
  }

  // A release of its own content type `ct-<id>` and a rollout `id` of it.
  void Start(const std::string& id) {
    Release r;
    r.set_id(id + "-rel");
    r.set_content_type("ct-" + id);
    r.set_version("1");
    r.set_digest_sha256(std::string(64, 'a'));
    r.set_size_bytes(10);
    ASSERT_TRUE(controller_->CreateRelease(r, "ci").ok());
    StartRolloutRequest req;
    req.rollout_id = id;
    req.release_id = r.id();
    req.plan = plan_;
    req.allow_no_baseline = true;
    req.actor = "ci";
    req.reason = "test";
    ASSERT_TRUE(controller_->StartRollout(req).ok());
  }

  FakeClock clock_;
  StorePtr store_;
  std::unique_ptr<Controller> controller_;
  Plan plan_;
};

TEST_F(ServerMetricsTest, PerRolloutSeriesAreLiveAndRecentOnly) {
  for (const char* id : {"old-1", "old-2", "recent", "live"}) Start(id);
  for (const char* id : {"old-1", "old-2", "recent"}) {
    ASSERT_TRUE(controller_->Abort(id, "alice", "done").ok());
  }
  ServerMetrics metrics(controller_.get(), /*max_recent_rollouts=*/1);
  const std::string text = metrics.Render({});
  EXPECT_THAT(text, HasSubstr("ringfence_rollouts{state=\"aborted\"} 3"));
  EXPECT_THAT(text, HasSubstr("ringfence_rollouts{state=\"running\"} 1"));
  EXPECT_THAT(text, HasSubstr("ringfence_rollout_state{content_type=\"ct-live\""
                              ",rollout_id=\"live\",state=\"running\"} 1"));
  EXPECT_THAT(text, HasSubstr("rollout_id=\"recent\""));
  EXPECT_THAT(text, Not(HasSubstr("rollout_id=\"old-1\"")));
  EXPECT_THAT(text, Not(HasSubstr("rollout_id=\"old-2\"")));
  EXPECT_THAT(text, HasSubstr("ringfence_rollout_halts_total 0"));
}

TEST_F(ServerMetricsTest, AuditHeadFollowsTheLog) {
  ServerMetrics metrics(controller_.get());
  EXPECT_THAT(metrics.Render({}), HasSubstr("ringfence_audit_head_seq 0"));
  Start("a");
  auto entries = controller_->ReadAudit(0, 1000);
  ASSERT_TRUE(entries.ok());
  ASSERT_FALSE(entries->empty());
  const AuditEntry& head = entries->back();
  std::string text = metrics.Render({});
  EXPECT_THAT(text, HasSubstr(absl::StrCat("ringfence_audit_head_seq ",
                                           head.seq(), "\n")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("hash=\"", head.hash(), "\"")));
  ASSERT_TRUE(controller_->Pause("a", "alice", "look").ok());
  text = metrics.Render({});
  EXPECT_THAT(text, HasSubstr(absl::StrCat("ringfence_audit_head_seq ",
                                           head.seq() + 1, "\n")));
}

TEST_F(ServerMetricsTest, CountsAndUnknownMethods) {
  ServerMetrics metrics(controller_.get());
  metrics.ObserveRpc("/ringfence.v1.Rollouts/PauseRollout",
                     grpc::StatusCode::PERMISSION_DENIED, 0.002);
  metrics.ObserveRpc("/made.up/Method", grpc::StatusCode::UNIMPLEMENTED, 0.1);
  Ingestor::Counts counts;
  counts.events_ingested = 1234;
  counts.refused_saturated = 2;
  const std::string text = metrics.Render(counts);
  EXPECT_THAT(text, HasSubstr("ringfence_rpc_duration_seconds_count{code="
                              "\"PERMISSION_DENIED\",method=\"/ringfence.v1."
                              "Rollouts/PauseRollout\"} 1"));
  EXPECT_THAT(text, HasSubstr("method=\"other\""));
  EXPECT_THAT(text, Not(HasSubstr("made.up")));
  EXPECT_THAT(text,
              HasSubstr("ringfence_telemetry_events_ingested_total 1234"));
  EXPECT_THAT(text, HasSubstr("ringfence_telemetry_batches_refused_total{"
                              "reason=\"saturated\"} 2"));
  EXPECT_THAT(text, HasSubstr("ringfence_store_healthy 1"));
}

}  // namespace
}  // namespace ringfence
