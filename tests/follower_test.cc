// Follower tests: a follower reading the leader's store answers only what
// needs no new exposure, as the leader would, and fails closed once its
// snapshot is older than its bound. Randomized over rollouts driven by an
// emulated fleet and random operator actions (RINGFENCE_FOLLOWER_SEEDS=N
// runs more seeds).
#include "ringfence/follower.h"

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/fake_fleet.h"
#include "status_matchers.h"
#include "test_release.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kType[] = "channel-file/291";
constexpr int kHosts = 200;

constexpr char kPlan[] = R"pb(
  name: "test"
  policy {
    silence_timeout { seconds: 300 }
    apply_timeout { seconds: 300 }
    min_exposed_hosts: 3
    signals { signal: "crash" max_affected_hosts: 10 }
    signals { signal: "unclean_reboot" max_affected_hosts: 10 }
  }
  post_completion_watch { seconds: 1800 }
  stages {
    name: "canary"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 600 }
    pacing { initial_hosts: 3 }
    policy { signals { signal: "apply_stuck" max_affected_hosts: 3 } }
  }
  stages {
    name: "half"
    audience { percent: 50 }
    bake_time { seconds: 900 }
    pacing { initial_hosts: 10 }
  }
  stages {
    name: "all"
    audience { percent: 100 }
    bake_time { seconds: 900 }
  }
  late_track { bake_time { seconds: 600 } }
)pb";

Release MakeRelease(const std::string& id, char digest) {
  return ::ringfence::testing::TestRelease(id, kType, digest);
}

// The hosts of FakeFleet (fake_fleet.cc), as they ask.
HostInfo FleetHost(int i, int tenants, int dogfood) {
  HostInfo h;
  h.host_id = absl::StrFormat("host-%06d", i);
  h.tenant = absl::StrCat("tenant-", i % tenants);
  if (i < dogfood) h.labels.push_back("ring:dogfood");
  h.agent_version = "7.11.0";
  h.platform = "windows";
  return h;
}

std::string ReleaseOf(const Assignment& a) {
  return a.release == nullptr ? "" : a.release->id();
}

class FollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ParseTextOrJson(kPlan, &plan_).ok());
    fleet_config_.Clear();
    held_.reset();
    follower_.reset();
    leader_.reset();
    for (auto [name, track] : {std::pair{"tenant-3", config::v1::TRACK_PINNED},
                               std::pair{"tenant-4", config::v1::TRACK_LATE}}) {
      Tenant* t = fleet_config_.add_tenants();
      t->set_name(name);
      t->set_track(track);
    }
    store_ = NewMemoryStore();
    ControllerOptions options;
    options.fleet = fleet_config_;
    auto c = Controller::Create(store_.get(), &clock_, options);
    ASSERT_OK(c);
    leader_ = std::move(*c);
    for (auto [id, digest] : {std::pair{"good", 'a'}, std::pair{"next", 'b'},
                              std::pair{"bad", 'c'}, std::pair{"late", 'd'}}) {
      ASSERT_OK(leader_->CreateRelease(MakeRelease(id, digest), "ci"));
    }
    auto f = Follower::Create(
        store_.get(), &clock_,
        {.fleet = fleet_config_, .max_staleness = absl::Seconds(1)});
    ASSERT_OK(f);
    follower_ = std::move(*f);
  }

  absl::StatusOr<Rollout> Start(const std::string& release) {
    StartRolloutRequest r;
    r.release_id = release;
    r.plan = plan_;
    r.actor = "ci";
    r.reason = "test";
    r.allow_no_baseline = true;
    return leader_->StartRollout(r);
  }

  Assignment Local(const HostInfo& host, FollowerVerdict* verdict) {
    FollowerAnswer a = follower_->Assign(host, {std::string(kType)});
    *verdict = a.verdict;
    if (a.verdict != FollowerVerdict::kAnswered) return Assignment();
    held_ = a.snapshot;
    return a.assignments.at(0);
  }

  FakeClock clock_;
  Plan plan_;
  FleetConfig fleet_config_;
  StorePtr store_;
  std::unique_ptr<Controller> leader_;
  std::unique_ptr<Follower> follower_;
  std::shared_ptr<const void> held_;
};

TEST_F(FollowerTest, RejectsBadOptions) {
  FollowerOptions options;
  options.max_staleness = absl::ZeroDuration();
  EXPECT_THAT(
      Follower::Create(store_.get(), &clock_, options).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_staleness")));
}

TEST_F(FollowerTest, NoSnapshotIsStale) {
  FollowerVerdict v;
  Local(FleetHost(0, 50, 20), &v);
  EXPECT_EQ(v, FollowerVerdict::kStale);
  EXPECT_FALSE(follower_->Fresh());
}

// Fresh() says what Assign() does: answers up to the bound, kStale after.
TEST_F(FollowerTest, FreshUntilTheBound) {
  ASSERT_OK(follower_->Refresh());
  EXPECT_TRUE(follower_->Fresh());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(follower_->Fresh());
  FollowerVerdict v;
  Local(FleetHost(0, 50, 20), &v);
  EXPECT_NE(v, FollowerVerdict::kStale);
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_FALSE(follower_->Fresh());
  Local(FleetHost(0, 50, 20), &v);
  EXPECT_EQ(v, FollowerVerdict::kStale);
  ASSERT_OK(follower_->Refresh());
  EXPECT_TRUE(follower_->Fresh());
}

TEST_F(FollowerTest, AnswersExposedForwardsNewGrantsAndSeesHalts) {
  ASSERT_OK(Start("good"));
  ASSERT_OK(follower_->Refresh());
  const HostInfo dogfood = FleetHost(0, 50, 20);
  const HostInfo later = FleetHost(100, 50, 20);
  FollowerVerdict v;
  // Not in the canary: NOT_YET. Its first check-in goes to the leader
  // (which admits it to the rollout's population); later ones are answered
  // locally, as the leader answers.
  FollowerAnswer first = follower_->Assign(later, {kType});
  EXPECT_EQ(first.verdict, FollowerVerdict::kForward);
  follower_->NoteAdmitted(later, {kType}, first.leader_epoch);
  Assignment a = Local(later, &v);
  ASSERT_EQ(v, FollowerVerdict::kAnswered);
  EXPECT_EQ(a.reason, leader_->Assign(later, kType).reason);
  EXPECT_EQ(a.reason, AssignReason::kNotYet);
  // A dogfood host without an exposure would be granted one: forwarded.
  Local(dogfood, &v);
  EXPECT_EQ(v, FollowerVerdict::kForward);
  // Without the leader: nothing granted.
  FollowerAnswer none = follower_->NoGrantAnswer(dogfood, {kType});
  ASSERT_EQ(none.verdict, FollowerVerdict::kAnswered);
  EXPECT_EQ(none.assignments[0].release, nullptr);
  EXPECT_EQ(none.assignments[0].reason, AssignReason::kStoreUnavailable);
  // The leader grants it (durably); the host then comes up on it.
  ASSERT_EQ(ReleaseOf(leader_->Assign(dogfood, kType)), "good");
  ASSERT_OK(follower_->Refresh());
  // Exposed but not known to be up: its check-in is evidence, forwarded.
  Local(dogfood, &v);
  EXPECT_EQ(v, FollowerVerdict::kForward);
  TelemetryEvent applied;
  applied.host_id = dogfood.host_id;
  applied.type = EventType::kApplied;
  applied.release_id = "good";
  applied.time = clock_.Now();
  ASSERT_OK(leader_->Ingest({applied}));
  clock_.Advance(absl::Seconds(5));
  TelemetryEvent beat = applied;
  beat.type = EventType::kHeartbeat;
  beat.time = clock_.Now();
  ASSERT_OK(leader_->Ingest({beat}));
  clock_.Advance(absl::Seconds(5));
  ASSERT_OK(leader_->Tick());  // checkpoints the host's evidence
  ASSERT_OK(follower_->Refresh());
  a = Local(dogfood, &v);
  ASSERT_EQ(v, FollowerVerdict::kAnswered);
  EXPECT_EQ(ReleaseOf(a), "good");
  EXPECT_EQ(a.reason, AssignReason::kExposed);
  // Emergency stop: the snapshot in hand still answers until it is older
  // than the bound; then nothing; a refresh sees the stop.
  ASSERT_OK(leader_->EmergencyStop(kType, "oncall", "bad"));
  clock_.Advance(absl::Milliseconds(1001));
  Local(dogfood, &v);
  EXPECT_EQ(v, FollowerVerdict::kStale);
  ASSERT_OK(follower_->Refresh());
  a = Local(dogfood, &v);
  ASSERT_EQ(v, FollowerVerdict::kAnswered);
  EXPECT_EQ(a.reason, AssignReason::kEmergencyStop);
  EXPECT_TRUE(a.unload);
  EXPECT_EQ(a.unload, leader_->Assign(dogfood, kType).unload);
}

// A host of the release's population checks in through the follower: its
// first check-in under a leader goes to that leader, which admits it to the
// rollout's control arm (its telemetry then counts there); the next ones
// are answered locally, until the leader changes.
TEST_F(FollowerTest, ACheckInIsForwardedOncePerLeader) {
  absl::StatusOr<Rollout> r = Start("good");
  ASSERT_OK(r);
  ASSERT_OK(follower_->Refresh());
  follower_->SetLeaderEpoch(4);
  const HostInfo later = FleetHost(100, 50, 20);
  FollowerAnswer a = follower_->Assign(later, {kType});
  ASSERT_EQ(a.verdict, FollowerVerdict::kForward);
  EXPECT_EQ(a.leader_epoch, 4);
  // What forwarding does: the leader answers (and admits it).
  EXPECT_EQ(leader_->Assign(later, kType).reason, AssignReason::kNotYet);
  follower_->NoteAdmitted(later, {kType}, a.leader_epoch);
  EXPECT_EQ(follower_->Assign(later, {kType}).verdict,
            FollowerVerdict::kAnswered);
  TelemetryEvent crash;
  crash.host_id = later.host_id;
  crash.type = EventType::kCrash;
  crash.time = clock_.Now();
  ASSERT_OK(leader_->Ingest({crash}));
  auto st = leader_->GetRollout(r->id());
  ASSERT_OK(st);
  EXPECT_EQ(st->telemetry.control_hosts, 1u);
  EXPECT_EQ(st->telemetry.outside_population_events, 0u);
  // A new leader knows nothing of it: forwarded once more. An answer from
  // the previous leader does not count.
  follower_->SetLeaderEpoch(5);
  a = follower_->Assign(later, {kType});
  EXPECT_EQ(a.verdict, FollowerVerdict::kForward);
  follower_->NoteAdmitted(later, {kType}, 4);
  EXPECT_EQ(follower_->Assign(later, {kType}).verdict,
            FollowerVerdict::kForward);
  follower_->NoteAdmitted(later, {kType}, 5);
  EXPECT_EQ(follower_->Assign(later, {kType}).verdict,
            FollowerVerdict::kAnswered);
  // Without forwarding (no leader to ask), it is answered all the same.
  const HostInfo other = FleetHost(101, 50, 20);
  FollowerAnswer none = follower_->NoGrantAnswer(other, {kType});
  ASSERT_EQ(none.verdict, FollowerVerdict::kAnswered);
  EXPECT_EQ(none.assignments[0].reason, AssignReason::kNotYet);
}

// Randomized: rollouts driven by FakeFleet through the leader, random
// operator actions, random refreshes. Every local answer that is a
// rollout's release is backed by a durable exposure at that moment (or by
// a completed rollout whose watch ended on record); a snapshot older than
// the bound answers nothing; a fresh snapshot answers as the leader does;
// after a rollback is committed, a refreshed follower tells no host the
// rolled-back release.
TEST_F(FollowerTest, RandomizedNeverAnswersAReleaseWithoutADurableExposure) {
  int seeds = 4;
  if (const char* env = std::getenv("RINGFENCE_FOLLOWER_SEEDS")) {
    seeds = std::max(1, std::atoi(env));
  }
  int local_releases = 0, compared = 0;
  // Local answers by reason, and verdicts: what the seeds exercised.
  absl::flat_hash_map<AssignReason, int> reasons;
  absl::flat_hash_map<FollowerVerdict, int> verdicts;
  for (int seed = 1; seed <= seeds; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    SetUp();
    std::mt19937_64 rng(seed);
    auto chance = [&](double p) {
      return std::uniform_real_distribution<double>(0, 1)(rng) < p;
    };
    FakeFleetOptions fo;
    fo.hosts = kHosts;
    fo.tenants = 5;
    fo.dogfood_hosts = 20;
    fo.poll_interval = absl::Seconds(30);
    fo.seed = seed;
    FakeFleet fleet(leader_.get(), &clock_, fo);
    fleet.SetBehavior("bad", {.boot_loop = true});
    const std::vector<std::string> releases = {"good", "next", "bad", "late"};
    size_t next_release = 0;
    std::string rollout_id;
    for (int step = 0; step < 400; ++step) {
      // The leader's rollout: start the next one once the last is done.
      if (rollout_id.empty() || chance(0.01)) {
        if (next_release < releases.size()) {
          absl::StatusOr<Rollout> r = Start(releases[next_release]);
          if (r.ok()) {
            rollout_id = r->id();
            ++next_release;
          }
        }
      }
      bool rolled_back = false;
      if (!rollout_id.empty()) {
        const double p = std::uniform_real_distribution<double>(0, 1)(rng);
        if (p < 0.02) {
          leader_->Pause(rollout_id, "op", "x").IgnoreError();
        } else if (p < 0.05) {
          leader_->Resume(rollout_id, "op", "x").IgnoreError();
        } else if (p < 0.06) {
          rolled_back = leader_->Abort(rollout_id, "op", "x").ok();
        } else if (p < 0.065) {
          rolled_back = leader_->EmergencyStop(kType, "op", "x").ok();
        } else if (p < 0.08) {
          leader_->ClearEmergencyStop(kType, "op", "x").IgnoreError();
        } else if (p < 0.09) {
          leader_->PromoteToCompletion(rollout_id, "op", "x").IgnoreError();
        }
      }
      const bool refresh = chance(0.7);
      bool fresh = false;
      if (chance(0.5)) {
        ASSERT_OK(fleet.Step(
            absl::Seconds(std::uniform_int_distribution<int>(5, 90)(rng))));
      }
      const absl::Time last_refresh = follower_->as_of();
      if (refresh || rolled_back) {
        ASSERT_OK(follower_->Refresh());
        fresh = true;
      }
      const bool stale =
          !fresh && clock_.Now() - last_refresh > absl::Seconds(1);
      // Durable exposures now, per rollout.
      absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>>
          exposed;
      absl::StatusOr<std::vector<Rollout>> rollouts = store_->ListRollouts();
      ASSERT_OK(rollouts);
      absl::flat_hash_map<std::string, Rollout> by_id;
      for (const Rollout& r : *rollouts) {
        by_id[r.id()] = r;
        absl::StatusOr<std::vector<Exposure>> ex =
            store_->ListExposures(r.id());
        ASSERT_OK(ex);
        for (const Exposure& e : *ex) exposed[r.id()].insert(e.host_id);
      }
      absl::StatusOr<std::vector<EmergencyStop>> stops =
          store_->ListEmergencyStops();
      ASSERT_OK(stops);
      for (int i = 0; i < kHosts; ++i) {
        const HostInfo host = FleetHost(i, fo.tenants, fo.dogfood_hosts);
        FollowerVerdict v;
        const Assignment a = Local(host, &v);
        ++verdicts[v];
        if (v == FollowerVerdict::kAnswered) ++reasons[a.reason];
        if (v == FollowerVerdict::kForward && chance(0.5)) {
          // The leader answered the forwarded call (the fleet's hosts check
          // in with the leader too: it has admitted them).
          follower_->NoteAdmitted(host, {kType}, 0);
        }
        if (stale) {
          ASSERT_EQ(v, FollowerVerdict::kStale) << host.host_id;
          continue;
        }
        if (v != FollowerVerdict::kAnswered) continue;
        if (a.rollout_id != nullptr && a.release != nullptr) {
          const Rollout& r = by_id.at(*a.rollout_id);
          if (a.release->id() == r.release_id()) {
            ++local_releases;
            const bool watch_ended =
                a.reason == AssignReason::kCompleted && r.has_watch_until() &&
                FromProto(r.watch_until()) <= FromProto(r.updated_at());
            if (!watch_ended) {
              ASSERT_TRUE(exposed[r.id()].contains(host.host_id))
                  << host.host_id << " told " << a.release->id() << " of "
                  << r.id() << " without a durable exposure (reason "
                  << AssignReasonName(a.reason) << ")";
            }
          }
        }
        if (fresh) {
          // Right after a refresh, nothing changed since: as the leader.
          ++compared;
          const Assignment l = leader_->Assign(host, kType);
          ASSERT_EQ(ReleaseOf(a), ReleaseOf(l)) << host.host_id;
          ASSERT_EQ(a.reason, l.reason) << host.host_id;
          ASSERT_EQ(a.unload, l.unload) << host.host_id;
          if (rolled_back) {
            // A committed rollback is seen by the refreshed follower.
            ASSERT_TRUE(a.reason == AssignReason::kRolledBack ||
                        a.reason == AssignReason::kEmergencyStop)
                << host.host_id << ": " << AssignReasonName(a.reason);
          }
        }
      }
      // Terminal: the next rollout may start.
      absl::StatusOr<RolloutStatus> st = leader_->GetRollout(rollout_id);
      if (st.ok() && (st->rollout.state() == config::v1::HALTED ||
                      st->rollout.state() == config::v1::ABORTED ||
                      st->rollout.state() == config::v1::COMPLETED)) {
        rollout_id.clear();
      }
    }
  }
  // The test exercised what it claims to.
  EXPECT_GT(local_releases, 100);
  EXPECT_GT(compared, 1000);
  for (AssignReason r : {AssignReason::kNotYet, AssignReason::kExposed,
                         AssignReason::kStageOpen, AssignReason::kCompleted,
                         AssignReason::kPaused, AssignReason::kRolledBack,
                         AssignReason::kEmergencyStop, AssignReason::kPinned}) {
    EXPECT_GT(reasons[r], 0) << AssignReasonName(r);
  }
  for (FollowerVerdict v :
       {FollowerVerdict::kAnswered, FollowerVerdict::kForward,
        FollowerVerdict::kStale}) {
    EXPECT_GT(verdicts[v], 0) << static_cast<int>(v);
  }
}

}  // namespace
}  // namespace ringfence
