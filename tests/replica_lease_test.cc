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
#include "ringfence/clock.h"
#include "status_matchers.h"
#include "store_factory.h"

namespace ringfence {
namespace {

using ::ringfence::testing::ExecTestSql;
using ::ringfence::testing::OpenTestPostgresStore;
using ::ringfence::testing::StatusIs;
using ::ringfence::testing::TestPostgresDsn;
using ::ringfence::testing::TestPostgresSchema;
using ::testing::HasSubstr;

constexpr absl::Duration kTtl = absl::Seconds(10);

class ReplicaLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dsn = TestPostgresDsn();
    ASSERT_TRUE(dsn.ok()) << dsn.status();
    dsn_ = *dsn;
    dir_ =
        (std::filesystem::path(::testing::TempDir()) /
         absl::StrCat(
             "replica_lease_test_", getpid(), "_",
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
            .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    if (!HasFailure()) {
      EXPECT_OK(ExecTestSql(dsn_, "DROP SCHEMA IF EXISTS " +
                                      TestPostgresSchema(dir_) + " CASCADE"));
    }
  }

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

  std::string dsn_, dir_;
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
  ASSERT_OK(ExecTestSql(dsn_, absl::StrCat("UPDATE ", TestPostgresSchema(dir_),
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

}  // namespace
}  // namespace ringfence
