// ReplicaLease::CheckHeld: how long a replica may still act as the leader by
// its own clock (service/replica_lease.h), over the real PostgreSQL lease.
// Needs the test server (TestPostgresDsn() in store_factory.h).
#include "service/replica_lease.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "postgres_schema_test.h"
#include "ringfence/clock.h"
#include "ringfence/cluster.h"
#include "status_matchers.h"
#include "store_factory.h"

namespace ringfence {
namespace {

using ::ringfence::testing::ExecTestSql;
using ::ringfence::testing::OpenTestPostgresStore;
using ::ringfence::testing::PostgresSchemaTest;
using ::ringfence::testing::StatusIs;
using ::testing::HasSubstr;

constexpr absl::Duration kTtl = absl::Seconds(10);

class ReplicaLeaseTest : public PostgresSchemaTest {
 protected:
  PostgresStorePtr Open() {
    absl::StatusOr<PostgresStorePtr> s = OpenTestPostgresStore(dir_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  ReplicaLeaseOptions Options(const std::string& id, absl::Duration interval) {
    ReplicaLeaseOptions o;
    o.replica_id = id;
    o.ttl = kTtl;
    o.interval = interval;
    o.clock = &clock_;
    return o;
  }

  static absl::StatusOr<int64_t> Lead(ReplicaLease& lease) {
    return lease.WaitUntilLeading([](absl::Duration) { return true; },
                                  [](const std::string&) {});
  }

  FakeClock clock_;
};

// Held from the start of the attempt that took it for the TTL less a
// twentieth; then not, by this clock alone, whatever the database says.
TEST_F(ReplicaLeaseTest, HeldForTheTtlFromTheLastAttemptThatSucceeded) {
  PostgresStorePtr store = Open();
  ASSERT_NE(store, nullptr);
  ReplicaLease lease(store.get(), Options("a", absl::Hours(1)));
  EXPECT_THAT(lease.CheckHeld(), StatusIs(absl::StatusCode::kUnavailable,
                                          HasSubstr("does not hold")));
  ASSERT_OK(Lead(lease).status());
  EXPECT_OK(lease.CheckHeld());
  clock_.Advance(kTtl * 0.9);
  EXPECT_OK(lease.CheckHeld());
  clock_.Advance(kTtl * 0.05);
  EXPECT_THAT(lease.CheckHeld(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("may no longer lead: its lease was last "
                                 "renewed 9.5s ago")));
  clock_.Advance(absl::Hours(1));
  EXPECT_THAT(lease.CheckHeld(), StatusIs(absl::StatusCode::kUnavailable));
}

// A renewal after the time ran out (nobody took over meanwhile) makes it
// hold again: no restart needed. Release ends it at once.
TEST_F(ReplicaLeaseTest, ARenewalHoldsItAgainAndReleaseEndsIt) {
  PostgresStorePtr store = Open();
  ASSERT_NE(store, nullptr);
  ReplicaLease lease(store.get(), Options("a", absl::Milliseconds(10)));
  ASSERT_OK(Lead(lease).status());
  clock_.Advance(kTtl);
  ASSERT_THAT(lease.CheckHeld(), StatusIs(absl::StatusCode::kUnavailable));
  lease.StartRenewing();  // renews every 10 ms of real time
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!lease.CheckHeld().ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_OK(lease.CheckHeld());
  ASSERT_OK(lease.Release());
  EXPECT_THAT(lease.CheckHeld(), StatusIs(absl::StatusCode::kUnavailable));
}

// Another replica took over: the superseded one never holds it again.
TEST_F(ReplicaLeaseTest, NotHeldOnceSuperseded) {
  PostgresStorePtr store_a = Open();
  PostgresStorePtr store_b = Open();
  ASSERT_NE(store_a, nullptr);
  ASSERT_NE(store_b, nullptr);
  ReplicaLease a(store_a.get(), Options("a", absl::Milliseconds(10)));
  ASSERT_OK(Lead(a).status());
  ASSERT_OK(ExecTestSql(dsn_, absl::StrCat("UPDATE ", schema_,
                                           ".lease SET expires_at = "
                                           "clock_timestamp() - INTERVAL "
                                           "'1 second'")));
  ReplicaLease b(store_b.get(), Options("b", absl::Hours(1)));
  ASSERT_OK(Lead(b).status());
  a.StartRenewing();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (a.CheckHeld().ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(a.CheckHeld(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_OK(b.CheckHeld());
}

// Two processes with the same --replica_id: the second must not take the
// lease from the live first one (which would fence a healthy leader); a
// restart of the first (the same address) takes it at once.
TEST_F(ReplicaLeaseTest, ADuplicateReplicaIdDoesNotTakeTheLease) {
  PostgresStorePtr store_a = Open();
  PostgresStorePtr store_dup = Open();
  PostgresStorePtr store_restart = Open();
  ASSERT_NE(store_a, nullptr);
  ASSERT_NE(store_dup, nullptr);
  ASSERT_NE(store_restart, nullptr);
  ReplicaLeaseOptions a_options = Options("a", absl::Hours(1));
  a_options.address = "host-1:7443";
  ReplicaLease a(store_a.get(), a_options);
  ASSERT_OK(Lead(a).status());

  ReplicaLeaseOptions dup_options = a_options;
  dup_options.address = "host-2:7443";
  ReplicaLease dup(store_dup.get(), dup_options);
  std::string said;
  int waits = 0;
  absl::StatusOr<int64_t> epoch =
      dup.WaitUntilLeading([&](absl::Duration) { return ++waits == 3; },
                           [&](const std::string& leader) { said = leader; });
  EXPECT_THAT(epoch.status(), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_THAT(said, HasSubstr("another process holds the lease under this "
                              "replica's id \"a\" (advertising "
                              "\"host-1:7443\", not \"host-2:7443\""));
  EXPECT_THAT(said, HasSubstr("is --replica_id duplicated?"));
  EXPECT_THAT(dup.CheckHeld(), StatusIs(absl::StatusCode::kUnavailable));
  // The first one still leads, unfenced, and its row still names it.
  EXPECT_OK(a.CheckHeld());
  absl::StatusOr<PostgresLease> renewed =
      store_a->AcquireLease("a", absl::Hours(1));
  ASSERT_OK(renewed.status());
  EXPECT_TRUE(renewed->held);
  absl::StatusOr<ClusterView> cluster = store_a->ReadCluster();
  ASSERT_OK(cluster.status());
  for (const ReplicaRecord& r : cluster->replicas) {
    if (r.replica_id == "a") {
      EXPECT_EQ(r.address, "host-1:7443");
    }
  }

  // A restart of "a" (same address) takes over at once, with a new epoch.
  ReplicaLease restart(store_restart.get(), a_options);
  absl::StatusOr<int64_t> restarted = Lead(restart);
  ASSERT_OK(restarted.status());
  EXPECT_EQ(*restarted, renewed->epoch + 1);
}

}  // namespace
}  // namespace ringfence
