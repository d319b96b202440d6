// Store contract tests, run on every Store implementation.
#include "ringfence/store.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "status_matchers.h"
#include "store_factory.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::ringfence::testing::StoreFactory;
using ::testing::HasSubstr;

class StoreTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    dir_ =
        (std::filesystem::path(::testing::TempDir()) /
         absl::StrCat(
             "store_test_", getpid(), "_", GetParam().name, "_",
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
            .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr)
        << "cannot open the " << GetParam().name << " store";
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  static AuditEntry Audit(const std::string& action) {
    AuditEntry a;
    a.set_actor("tester");
    a.set_action(action);
    a.set_reason("because");
    return a;
  }

  static Rollout MakeRollout(const std::string& id) {
    Rollout r;
    r.set_id(id);
    r.set_release_id("rel");
    r.set_content_type("t");
    r.set_state(config::v1::RUNNING);
    r.set_version(1);
    return r;
  }

  std::string dir_;
  StorePtr store_;
};

TEST_P(StoreTest, ReleasesAreCreatedOnce) {
  Release r;
  r.set_id("rel-1");
  r.set_content_type("t");
  ASSERT_OK(store_->PutRelease(r, Audit("create_release")));
  EXPECT_THAT(store_->PutRelease(r, Audit("create_release")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("rel-1")));
  auto got = store_->GetRelease("rel-1");
  ASSERT_OK(got);
  EXPECT_EQ(got->content_type(), "t");
  EXPECT_THAT(store_->GetRelease("nope"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
  auto all = store_->ListReleases();
  ASSERT_OK(all);
  EXPECT_EQ(all->size(), 1u);
}

TEST_P(StoreTest, TransitionsAreCompareAndSwapWithAudit) {
  ASSERT_OK(store_->CreateRollout(MakeRollout("ro-1"), Audit("start")));
  EXPECT_THAT(store_->CreateRollout(MakeRollout("ro-1"), Audit("start")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  Rollout next = MakeRollout("ro-1");
  next.set_state(config::v1::PAUSED);
  next.set_version(2);
  ASSERT_OK(store_->CommitTransition(next, 1, Audit("pause"), nullptr));
  // A writer holding the stale version loses and changes nothing.
  Rollout stale = MakeRollout("ro-1");
  stale.set_state(config::v1::ABORTED);
  stale.set_version(2);
  EXPECT_THAT(store_->CommitTransition(stale, 1, Audit("abort"), nullptr),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("version 2")));
  auto got = store_->GetRollout("ro-1");
  ASSERT_OK(got);
  EXPECT_EQ(got->state(), config::v1::PAUSED);
  auto audit = store_->ReadAudit(0, 100);
  ASSERT_OK(audit);
  ASSERT_EQ(audit->size(), 2u);  // start, pause (not the lost abort)
  EXPECT_EQ((*audit)[0].seq(), 1u);
  EXPECT_EQ((*audit)[1].seq(), 2u);
  EXPECT_EQ((*audit)[1].action(), "pause");
  auto tail = store_->ReadAudit(1, 100);
  ASSERT_OK(tail);
  ASSERT_EQ(tail->size(), 1u);
  EXPECT_THAT(
      store_->CommitTransition(MakeRollout("missing"), 1, Audit("x"), nullptr),
      StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreTest, DecisionsAreOrderedAndUnique) {
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    Decision d;
    d.set_rollout_id("ro-1");
    d.set_seq(seq);
    ASSERT_OK(store_->AppendDecision(d));
  }
  Decision dup;
  dup.set_rollout_id("ro-1");
  dup.set_seq(2);
  EXPECT_THAT(store_->AppendDecision(dup),
              StatusIs(absl::StatusCode::kAlreadyExists));
  auto after1 = store_->ListDecisions("ro-1", 1);
  ASSERT_OK(after1);
  ASSERT_EQ(after1->size(), 2u);
  EXPECT_EQ((*after1)[0].seq(), 2u);
}

TEST_P(StoreTest, ExposuresAreIdempotentPerHost) {
  std::vector<Exposure> batch = {{"h1", 0, absl::FromUnixSeconds(10)},
                                 {"h2", 1, absl::FromUnixSeconds(20)}};
  ASSERT_OK(store_->RecordExposures("ro-1", batch));
  ASSERT_OK(store_->RecordExposures("ro-1", batch));
  auto got = store_->ListExposures("ro-1");
  ASSERT_OK(got);
  EXPECT_EQ(got->size(), 2u);
  auto none = store_->ListExposures("ro-2");
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreTest, ExposuresKeepWhetherTheyWereGrants) {
  std::vector<Exposure> batch = {{"h-1", 0, absl::FromUnixSeconds(10), true},
                                 {"h-2", 1, absl::FromUnixSeconds(11), false}};
  ASSERT_OK(store_->RecordExposures("ro-1", batch));
  auto got = store_->ListExposures("ro-1");
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 2u);
  for (const Exposure& e : *got) {
    EXPECT_EQ(e.granted, e.host_id == "h-1") << e.host_id;
    EXPECT_EQ(e.stage, e.host_id == "h-1" ? 0u : 1u);
  }
}

// Checkpoints upsert host evidence by key, in one transaction with the
// aggregates; records of other rollouts stay apart.
TEST_P(StoreTest, CheckpointsUpsertHostEvidence) {
  HostEvidence a;
  a.host_key = 0xfedcba9876543210ULL;  // above INT64_MAX: stored bit-exact
  a.exposed = true;
  a.stage = 2;
  a.exposed_at = absl::FromUnixSeconds(1700000000);
  a.flags = 0x15;
  a.affected = 0x3;
  a.pre_affected = 0x4;
  a.loading_since = absl::FromUnixSeconds(1700000100);
  HostEvidence b;
  b.host_key = 7;
  b.affected = 0x1;
  ASSERT_OK(store_->PutCheckpoint("ro-1", "one", {a, b}));
  b.affected = 0x5;
  ASSERT_OK(store_->PutCheckpoint("ro-1", "two", {b}));
  ASSERT_OK(store_->PutCheckpoint("ro-2", "other", {}));
  auto cp = store_->GetCheckpoint("ro-1");
  ASSERT_OK(cp);
  EXPECT_EQ(*cp, "two");
  auto got = store_->ListHostEvidence("ro-1");
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 2u);
  for (const HostEvidence& h : *got) {
    if (h.host_key == a.host_key) {
      EXPECT_TRUE(h.exposed);
      EXPECT_EQ(h.stage, 2u);
      EXPECT_EQ(h.exposed_at, a.exposed_at);
      EXPECT_EQ(h.flags, 0x15u);
      EXPECT_EQ(h.affected, 0x3u);
      EXPECT_EQ(h.pre_affected, 0x4u);
      EXPECT_EQ(h.loading_since, a.loading_since);
    } else {
      EXPECT_EQ(h.host_key, 7u);
      EXPECT_FALSE(h.exposed);
      EXPECT_EQ(h.loading_since, absl::InfinitePast());
      EXPECT_EQ(h.affected, 0x5u);
    }
  }
  auto other = store_->ListHostEvidence("ro-2");
  ASSERT_OK(other);
  EXPECT_TRUE(other->empty());
  // What a follower reads: the exposed hosts' records only.
  auto exposed = store_->ListExposedHostEvidence("ro-1");
  ASSERT_OK(exposed);
  ASSERT_EQ(exposed->size(), 1u);
  EXPECT_EQ((*exposed)[0].host_key, a.host_key);
  EXPECT_EQ((*exposed)[0].loading_since, a.loading_since);
}

TEST_P(StoreTest, EmergencyStopsSetAndClear) {
  EmergencyStop stop{"t", "ops", "bad file", absl::FromUnixSeconds(5)};
  ASSERT_OK(store_->SetEmergencyStop(stop, Audit("emergency_stop")));
  auto stops = store_->ListEmergencyStops();
  ASSERT_OK(stops);
  ASSERT_EQ(stops->size(), 1u);
  EXPECT_EQ((*stops)[0].reason, "bad file");
  ASSERT_OK(store_->ClearEmergencyStop("t", Audit("clear")));
  EXPECT_THAT(store_->ClearEmergencyStop("t", Audit("clear")),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreTest, WebhookCursorsAreReplacedAndKept) {
  auto none = store_->GetWebhookCursor("ops");
  ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());
  ASSERT_OK(store_->PutWebhookCursor("ops", 7));
  ASSERT_OK(store_->PutWebhookCursor("ops", 9));
  ASSERT_OK(store_->PutWebhookCursor("pager", 0));
  ASSERT_OK(store_->PutWebhookCursor("big", uint64_t{1} << 62));
  auto ops = store_->GetWebhookCursor("ops");
  ASSERT_OK(ops);
  EXPECT_EQ(*ops, std::optional<uint64_t>(9));
  auto pager = store_->GetWebhookCursor("pager");
  ASSERT_OK(pager);
  EXPECT_EQ(*pager, std::optional<uint64_t>(0));
  if (!GetParam().persistent) return;
  // Another process over the same data (a restart, the next leader).
  store_.reset();
  store_ = GetParam().open(dir_);
  ASSERT_NE(store_, nullptr);
  ops = store_->GetWebhookCursor("ops");
  ASSERT_OK(ops);
  EXPECT_EQ(*ops, std::optional<uint64_t>(9));
  auto big = store_->GetWebhookCursor("big");
  ASSERT_OK(big);
  EXPECT_EQ(*big, std::optional<uint64_t>(uint64_t{1} << 62));
}

INSTANTIATE_TEST_SUITE_P(
    Stores, StoreTest,
    ::testing::ValuesIn(::ringfence::testing::AllStoreFactories()),
    [](const ::testing::TestParamInfo<StoreFactory>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace ringfence
