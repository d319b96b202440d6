// The lease and fencing of the PostgreSQL store (PostgresStore::AcquireLease):
// who leads, when another may take over (by the database's clock), and that
// a store whose epoch was superseded writes nothing. Each store stands for
// one ringfenced process; several share a schema. Needs the test server
// (TestPostgresDsn() in store_factory.h).
//
// The randomized tests print their seed on failure; rerun one with
// RINGFENCE_LEASE_SEED=<seed>, and run more with RINGFENCE_LEASE_RUNS=<n>.
#include "store/postgres_lease.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "postgres_schema_test.h"
#include "ringfence/audit.h"
#include "ringfence/clock.h"
#include "ringfence/postgres_store.h"
#include "status_matchers.h"
#include "store/postgres_conn.h"
#include "store_factory.h"

namespace ringfence {
namespace {

using ::ringfence::testing::ExecTestSql;
using ::ringfence::testing::OpenTestPostgresStore;
using ::ringfence::testing::PostgresSchemaTest;
using ::ringfence::testing::QueryTestSql;
using ::ringfence::testing::StatusIs;
using ::testing::HasSubstr;

constexpr absl::Duration kLongTtl = absl::Hours(1);

AuditEntry Audit(const std::string& actor, const std::string& action) {
  AuditEntry a;
  a.set_actor(actor);
  a.set_action(action);
  return a;
}

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  int64_t out = 0;
  return v != nullptr && absl::SimpleAtoi(v, &out) ? out : fallback;
}

class PostgresLeaseTest : public PostgresSchemaTest {
 protected:
  // A store over the test's schema: another process of the cluster.
  PostgresStorePtr Open(PostgresStoreOptions options = {}) {
    absl::StatusOr<PostgresStorePtr> s =
        OpenTestPostgresStore(dir_, std::move(options));
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Time passes for the lease (only): it expires now, by the database.
  void ExpireLease() {
    ASSERT_OK(ExecTestSql(dsn_, absl::StrCat("UPDATE ", schema_,
                                             ".lease SET expires_at = "
                                             "clock_timestamp() - INTERVAL "
                                             "'1 second'")));
  }

  std::vector<std::string> Query(const std::string& sql) {
    absl::StatusOr<std::vector<std::string>> rows = QueryTestSql(dsn_, sql);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? *rows : std::vector<std::string>{};
  }

  // Everything the store keeps but the lease, as text: to show that a
  // refused write changed nothing.
  std::string Contents() {
    std::string out;
    for (const char* table :
         {"releases", "rollouts", "decisions", "exposures", "emergency_stops",
          "checkpoints", "host_evidence", "audit", "audit_head"}) {
      for (const std::string& row :
           Query(absl::StrCat("SELECT x::text FROM ", schema_, ".", table,
                              " x ORDER BY x::text"))) {
        absl::StrAppend(&out, table, ": ", row, "\n");
      }
    }
    return out;
  }

  // The epoch column of the audit log, in seq order.
  std::vector<int64_t> AuditEpochs() {
    std::vector<int64_t> out;
    for (const std::string& e : Query(absl::StrCat(
             "SELECT epoch FROM ", schema_, ".audit ORDER BY seq"))) {
      int64_t v = 0;
      EXPECT_TRUE(absl::SimpleAtoi(e, &v)) << e;
      out.push_back(v);
    }
    return out;
  }
};

TEST_F(PostgresLeaseTest, FirstAcquireLeadsRenewalKeepsTheEpoch) {
  PostgresStorePtr a = Open();
  PostgresStorePtr b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->fenced_epoch(), 0);

  absl::StatusOr<PostgresLease> lease =
      a->AcquireLease("r1", absl::Seconds(10));
  ASSERT_OK(lease);
  EXPECT_TRUE(lease->held);
  EXPECT_EQ(lease->holder, "r1");
  EXPECT_EQ(lease->epoch, 1);
  EXPECT_GT(lease->remaining, absl::Seconds(9));
  EXPECT_LE(lease->remaining, absl::Seconds(10));
  EXPECT_EQ(a->fenced_epoch(), 1);

  lease = a->AcquireLease("r1", absl::Seconds(20));
  ASSERT_OK(lease);
  EXPECT_TRUE(lease->held);
  EXPECT_EQ(lease->epoch, 1);
  EXPECT_GT(lease->remaining, absl::Seconds(19));

  // Another replica sees who leads, and does not.
  lease = b->AcquireLease("r2", absl::Seconds(10));
  ASSERT_OK(lease);
  EXPECT_FALSE(lease->held);
  EXPECT_EQ(lease->holder, "r1");
  EXPECT_EQ(lease->epoch, 1);
  EXPECT_GT(lease->remaining, absl::Seconds(18));
  EXPECT_EQ(b->fenced_epoch(), 0);

  // The leader's writes carry its epoch.
  ASSERT_OK(a->AppendAudit(Audit("a", "x")));
  EXPECT_THAT(AuditEpochs(), ::testing::ElementsAre(1));
}

TEST_F(PostgresLeaseTest, BadArgumentsAreRefused) {
  PostgresStorePtr a = Open();
  ASSERT_NE(a, nullptr);
  EXPECT_THAT(
      a->AcquireLease("", absl::Seconds(1)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("replica_id")));
  EXPECT_THAT(a->AcquireLease("r1", absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ttl")));
  ASSERT_OK(a->AcquireLease("r1", absl::Seconds(1)));
  EXPECT_THAT(a->AcquireLease("r9", absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("holds epoch 1 as replica \"r1\"")));
  PostgresStoreOptions o;
  o.dsn = dsn_;
  o.idle_in_transaction_timeout = -absl::Seconds(1);
  EXPECT_THAT(OpenPostgresStore(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("idle_in_transaction_timeout")));
}

// Expiry is judged by the database's clock: a replica whose own clock runs
// a century ahead still waits, and takes over once the database says the
// lease expired.
TEST_F(PostgresLeaseTest, TakeoverOnlyAfterExpiryByTheDatabaseClock) {
  FakeClock future(absl::FromCivil(absl::CivilSecond(2125, 1, 1, 0, 0, 0),
                                   absl::UTCTimeZone()));
  PostgresStoreOptions fast_clock;
  fast_clock.clock = &future;
  PostgresStorePtr a = Open();
  PostgresStorePtr b = Open(fast_clock);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_OK(a->AcquireLease("r1", kLongTtl));
  absl::StatusOr<PostgresLease> lease = b->AcquireLease("r2", kLongTtl);
  ASSERT_OK(lease);
  EXPECT_FALSE(lease->held);

  ExpireLease();
  lease = b->AcquireLease("r2", kLongTtl);
  ASSERT_OK(lease);
  EXPECT_TRUE(lease->held);
  EXPECT_EQ(lease->holder, "r2");
  EXPECT_EQ(lease->epoch, 2);
  EXPECT_EQ(b->fenced_epoch(), 2);
}

// The same in real time: a short lease that its holder stops renewing.
TEST_F(PostgresLeaseTest, AnUnrenewedLeaseIsTakenOverAfterItsTtl) {
  PostgresStorePtr a = Open();
  PostgresStorePtr b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const absl::Duration ttl = absl::Milliseconds(400);
  ASSERT_OK(a->AcquireLease("r1", ttl));
  const absl::Time start = absl::Now();
  absl::StatusOr<PostgresLease> lease;
  do {
    lease = b->AcquireLease("r2", ttl);
    ASSERT_OK(lease);
    if (!lease->held) absl::SleepFor(absl::Milliseconds(10));
  } while (!lease->held && absl::Now() - start < absl::Seconds(10));
  const absl::Duration waited = absl::Now() - start;
  ASSERT_TRUE(lease->held);
  EXPECT_EQ(lease->epoch, 2);
  // Not before the TTL (with a little slack for the two clocks' readings),
  // and not long after.
  EXPECT_GE(waited, ttl - absl::Milliseconds(50));
  EXPECT_LT(waited, ttl + absl::Seconds(2));
}

// A leader shutting down releases the lease: another replica takes over at
// once, and the released store stays fenced.
TEST_F(PostgresLeaseTest, AReleasedLeaseIsTakenOverAtOnce) {
  PostgresStorePtr a = Open();
  PostgresStorePtr b = Open();
  PostgresStorePtr c = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  ASSERT_OK(b->ReleaseLease());  // holds none: nothing to do
  ASSERT_OK(a->AcquireLease("r1", kLongTtl));
  absl::StatusOr<PostgresLease> lease = b->AcquireLease("r2", kLongTtl);
  ASSERT_OK(lease);
  EXPECT_FALSE(lease->held);
  ASSERT_OK(a->ReleaseLease());
  lease = b->AcquireLease("r2", kLongTtl);
  ASSERT_OK(lease);
  EXPECT_TRUE(lease->held);
  EXPECT_EQ(lease->epoch, 2);
  EXPECT_THAT(a->AppendAudit(Audit("a", "after release")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // A late release of an old epoch leaves the new one alone.
  ASSERT_OK(a->ReleaseLease());
  lease = c->AcquireLease("r3", kLongTtl);
  ASSERT_OK(lease);
  EXPECT_FALSE(lease->held);
  EXPECT_GT(lease->remaining, absl::Minutes(59));
}

// A process restarting under its replica's id takes over at once, with a
// new epoch: the earlier process, if it still runs, is fenced out.
TEST_F(PostgresLeaseTest, TheSameReplicaIdTakesOverAtOnceWithANewEpoch) {
  PostgresStorePtr before = Open();
  ASSERT_NE(before, nullptr);
  ASSERT_OK(before->AcquireLease("r1", kLongTtl));
  PostgresStorePtr after = Open();
  ASSERT_NE(after, nullptr);
  absl::StatusOr<PostgresLease> lease = after->AcquireLease("r1", kLongTtl);
  ASSERT_OK(lease);
  EXPECT_TRUE(lease->held);
  EXPECT_EQ(lease->epoch, 2);
  EXPECT_THAT(before->AppendAudit(Audit("before", "x")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("lease epoch 1 was superseded by epoch 2")));
  ASSERT_OK(after->AppendAudit(Audit("after", "x")));
}

// Every write of a store whose epoch was superseded is refused by the
// database-side check, and leaves everything as it was. Each write runs on
// a fresh old leader, so that the refusal comes from the check in its
// transaction and not from what the store remembers.
TEST_F(PostgresLeaseTest, EveryWriteOfASupersededStoreIsRefused) {
  PostgresStorePtr setup = Open();
  ASSERT_NE(setup, nullptr);
  Rollout rollout;
  rollout.set_id("ro-1");
  rollout.set_version(1);
  ASSERT_OK(setup->CreateRollout(rollout, Audit("setup", "start")));
  ASSERT_OK(setup->SetEmergencyStop({"type-x", "ops", "r", absl::Now()},
                                    Audit("setup", "stop")));
  setup.reset();

  Release release;
  release.set_id("rel-new");
  Rollout next = rollout;
  next.set_version(2);
  Rollout other;
  other.set_id("ro-2");
  Decision decision;
  decision.set_rollout_id("ro-1");
  decision.set_seq(1);
  const std::vector<Exposure> exposures = {{"h1", 0, absl::Now()}};
  const std::vector<HostEvidence> evidence = {{7, true, 0, absl::Now()}};
  const std::vector<std::pair<std::string, std::function<absl::Status(Store&)>>>
      writes = {
          {"PutRelease",
           [&](Store& s) { return s.PutRelease(release, Audit("old", "r")); }},
          {"CreateRollout",
           [&](Store& s) { return s.CreateRollout(other, Audit("old", "c")); }},
          {"CommitTransition",
           [&](Store& s) {
             return s.CommitTransition(next, 1, Audit("old", "t"), &decision);
           }},
          {"AppendDecision",
           [&](Store& s) { return s.AppendDecision(decision); }},
          {"RecordExposures",
           [&](Store& s) { return s.RecordExposures("ro-1", exposures); }},
          {"SetEmergencyStop",
           [&](Store& s) {
             return s.SetEmergencyStop({"type-y", "old", "r", absl::Now()},
                                       Audit("old", "s"));
           }},
          {"ClearEmergencyStop",
           [&](Store& s) {
             return s.ClearEmergencyStop("type-x", Audit("old", "c"));
           }},
          {"PutCheckpoint",
           [&](Store& s) { return s.PutCheckpoint("ro-1", "cp", evidence); }},
          {"AppendAudit",
           [&](Store& s) { return s.AppendAudit(Audit("old", "a")); }},
          {"Probe", [&](Store& s) { return s.Probe(); }},
      };
  int next_replica = 0;
  for (const auto& [name, write] : writes) {
    SCOPED_TRACE(name);
    std::atomic<int> told{0};
    PostgresStoreOptions options;
    options.on_superseded = [&told](const absl::Status& s) {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition));
      ++told;
    };
    PostgresStorePtr old_leader = Open(options);
    PostgresStorePtr new_leader = Open();
    ASSERT_NE(old_leader, nullptr);
    ASSERT_NE(new_leader, nullptr);
    ExpireLease();
    absl::StatusOr<PostgresLease> old_lease =
        old_leader->AcquireLease(absl::StrCat("r", next_replica++), kLongTtl);
    ASSERT_OK(old_lease);
    ASSERT_TRUE(old_lease->held);
    ExpireLease();
    absl::StatusOr<PostgresLease> new_lease =
        new_leader->AcquireLease(absl::StrCat("r", next_replica++), kLongTtl);
    ASSERT_OK(new_lease);
    ASSERT_TRUE(new_lease->held);
    ASSERT_EQ(new_lease->epoch, old_lease->epoch + 1);

    const std::string before = Contents();
    EXPECT_THAT(
        write(*old_leader),
        StatusIs(absl::StatusCode::kFailedPrecondition,
                 HasSubstr(absl::StrCat(
                     "fenced: this replica's lease epoch ", old_lease->epoch,
                     " was superseded by epoch ", new_lease->epoch,
                     " (held by \"", new_lease->holder,
                     "\"); the write was refused: nothing was written"))));
    EXPECT_EQ(Contents(), before);
    EXPECT_EQ(told.load(), 1);
    // It stays fenced, never leads again, and says so once.
    EXPECT_THAT(write(*old_leader),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(old_leader->AcquireLease(old_lease->holder, kLongTtl),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("superseded")));
    EXPECT_EQ(told.load(), 1);
    EXPECT_EQ(Contents(), before);
  }
}

// A leader that stops (SIGSTOP, a long GC pause, a partition) and wakes up
// after another replica took over: its renewal fails and its writes are
// refused.
TEST_F(PostgresLeaseTest, APausedLeaderCannotWriteAfterATakeover) {
  PostgresStorePtr a = Open();
  PostgresStorePtr b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const absl::Duration ttl = absl::Milliseconds(300);
  ASSERT_OK(a->AcquireLease("r1", ttl));
  ASSERT_OK(a->AppendAudit(Audit("a", "before the pause")));
  // a pauses; b polls until it leads.
  absl::StatusOr<PostgresLease> lease;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    absl::SleepFor(absl::Milliseconds(20));
    lease = b->AcquireLease("r2", ttl);
    ASSERT_OK(lease);
  } while (!lease->held && absl::Now() < deadline);
  ASSERT_TRUE(lease->held);
  ASSERT_OK(b->AppendAudit(Audit("b", "after the takeover")));
  // a wakes up and carries on as if nothing happened.
  const std::string before = Contents();
  EXPECT_THAT(a->AppendAudit(Audit("a", "after the pause")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("superseded by epoch 2")));
  EXPECT_THAT(a->AcquireLease("r1", ttl),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Contents(), before);
  EXPECT_THAT(AuditEpochs(), ::testing::ElementsAre(1, 2));
}

// A write in flight when the lease expires holds the lease row FOR SHARE:
// the takeover waits for it to commit (so it is ordered before the new
// epoch). A leader paused inside its transaction is cut off by the server
// (idle_in_transaction_timeout), which releases the lock and lets the
// takeover through.
TEST_F(PostgresLeaseTest, TakeoverWaitsForAWriteInFlightAndCutsOffAPausedOne) {
  PostgresStorePtr a = Open();
  PostgresStorePtr b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_OK(a->AcquireLease("r1", kLongTtl));

  // A write of the leader of `epoch`, on a connection of our own, paused
  // after the store's own epoch check (internal::LockLeaseOn).
  const internal::Redactor redact("");
  const auto begin_write = [&](const std::string& key, int idle_timeout_ms,
                               int64_t epoch) {
    auto c =
        std::make_unique<internal::Conn>(PQconnectdb(dsn_.c_str()), &redact);
    EXPECT_FALSE(c->broken());
    EXPECT_OK(c->ExecScript(
        "set up", absl::StrCat("SET search_path TO ", schema_,
                               "; SET idle_in_transaction_session_timeout = ",
                               idle_timeout_ms, "; BEGIN")
                      .c_str()));
    absl::StatusOr<internal::LeaseRow> row = internal::LockLeaseOn(*c);
    EXPECT_OK(row);
    EXPECT_EQ(row.ok() ? row->epoch : -1, epoch);
    internal::Params p;
    p.Text(key);
    EXPECT_OK(c->Exec("write",
                      "INSERT INTO checkpoints(rollout_id, at_ns, body) "
                      "VALUES($1, 0, '')",
                      p));
    return c;
  };

  {
    // (Expired first: the expiry's own UPDATE would wait for the write.)
    ExpireLease();
    auto writer = begin_write("in-flight", 0, 1);
    std::atomic<bool> taken{false};
    std::thread takeover([&] {
      absl::StatusOr<PostgresLease> lease = b->AcquireLease("r2", kLongTtl);
      EXPECT_OK(lease);
      EXPECT_TRUE(lease.ok() && lease->held);
      taken = true;
    });
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_FALSE(taken.load()) << "the takeover did not wait for the write";
    EXPECT_OK(writer->ExecScript("commit", "COMMIT"));
    takeover.join();
    EXPECT_TRUE(taken.load());
    EXPECT_EQ(Query(absl::StrCat("SELECT COUNT(*) FROM ", schema_,
                                 ".checkpoints WHERE rollout_id = "
                                 "'in-flight'")),
              std::vector<std::string>{"1"});
  }
  ASSERT_EQ(b->fenced_epoch(), 2);

  // b's write pauses inside its transaction; the server ends the session
  // after 200ms, and c takes over without waiting for b to wake up.
  PostgresStorePtr c = Open();
  ASSERT_NE(c, nullptr);
  ExpireLease();
  auto paused = begin_write("paused", 200, 2);
  const absl::Time start = absl::Now();
  absl::StatusOr<PostgresLease> lease = c->AcquireLease("r3", kLongTtl);
  ASSERT_OK(lease);
  EXPECT_TRUE(lease->held);
  EXPECT_EQ(lease->epoch, 3);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // The paused transaction was rolled back.
  EXPECT_THAT(paused->ExecScript("commit", "COMMIT"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(Query(absl::StrCat("SELECT COUNT(*) FROM ", schema_,
                               ".checkpoints WHERE rollout_id = 'paused'")),
            std::vector<std::string>{"0"});
}

// The rule over seeded random interleavings, one step at a time, against a
// model: replicas acquire, renew, write, and restart (a new store under the
// same id); time passes for the lease. Each outcome must be the model's,
// and the audit log's epochs never go back.
TEST_F(PostgresLeaseTest, RandomInterleavingsMatchTheModel) {
  const int64_t runs = EnvInt("RINGFENCE_LEASE_RUNS", 3);
  const int64_t first_seed = EnvInt("RINGFENCE_LEASE_SEED", 1);
  constexpr int kReplicas = 3;
  constexpr int kSteps = 150;
  for (int64_t seed = first_seed; seed < first_seed + runs; ++seed) {
    SCOPED_TRACE(absl::StrCat("RINGFENCE_LEASE_SEED=", seed));
    ASSERT_OK(
        ExecTestSql(dsn_, "DROP SCHEMA IF EXISTS " + schema_ + " CASCADE"));
    std::mt19937_64 rng(static_cast<uint64_t>(seed));
    struct Replica {
      PostgresStorePtr store;
      int64_t epoch = 0;  // held, in the model
      bool superseded = false;
    };
    std::vector<Replica> replicas(kReplicas);
    for (Replica& r : replicas) r.store = Open();
    // The model's lease.
    std::string holder;
    int64_t epoch = 0;
    bool expired = true;
    std::vector<std::string> trace;
    for (int step = 0; step < kSteps; ++step) {
      const int i = static_cast<int>(rng() % kReplicas);
      const std::string id = absl::StrCat("r", i);
      Replica& r = replicas[i];
      ASSERT_NE(r.store, nullptr);
      const int op = static_cast<int>(rng() % 10);
      if (op < 4) {  // acquire or renew
        absl::StatusOr<PostgresLease> got = r.store->AcquireLease(id, kLongTtl);
        trace.push_back(absl::StrCat(
            id, " acquire: ",
            got.ok() ? (got->held ? "held" : "not") : got.status().ToString()));
        if (r.superseded) {
          ASSERT_THAT(got, StatusIs(absl::StatusCode::kFailedPrecondition))
              << absl::StrJoin(trace, "\n");
        } else if (r.epoch != 0) {
          if (epoch == r.epoch) {
            ASSERT_OK(got);
            ASSERT_TRUE(got->held) << absl::StrJoin(trace, "\n");
            expired = false;
          } else {
            ASSERT_THAT(got, StatusIs(absl::StatusCode::kFailedPrecondition))
                << absl::StrJoin(trace, "\n");
            r.superseded = true;
          }
        } else if (expired || holder == id) {
          ASSERT_OK(got);
          ASSERT_TRUE(got->held) << absl::StrJoin(trace, "\n");
          ++epoch;
          holder = id;
          expired = false;
          r.epoch = epoch;
          ASSERT_EQ(got->epoch, epoch);
        } else {
          ASSERT_OK(got);
          ASSERT_FALSE(got->held) << absl::StrJoin(trace, "\n");
          ASSERT_EQ(got->holder, holder);
          ASSERT_EQ(got->epoch, epoch);
        }
      } else if (op < 8) {  // write
        absl::Status s = r.store->AppendAudit(
            Audit(id, absl::StrCat("epoch ", r.epoch, " step ", step)));
        trace.push_back(absl::StrCat(id, " write: ", s.ToString()));
        if (r.superseded || (r.epoch != 0 && r.epoch != epoch)) {
          ASSERT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition))
              << absl::StrJoin(trace, "\n");
          r.superseded = true;
        } else {
          ASSERT_OK(s) << absl::StrJoin(trace, "\n");
        }
      } else if (op < 9) {  // time passes
        ExpireLease();
        expired = true;
        trace.push_back("lease expires");
      } else {  // the replica's process restarts
        r = Replica();
        r.store = Open();
        trace.push_back(absl::StrCat(id, " restarts"));
      }
    }
    // No committed write carries an epoch older than one before it (0: a
    // store that never took the lease, which is not fenced).
    int64_t last = 0;
    for (int64_t e : AuditEpochs()) {
      if (e == 0) continue;
      ASSERT_GE(e, last) << absl::StrJoin(trace, "\n");
      last = e;
    }
  }
}

// The same rule with real concurrency and real (database) time: replicas
// on threads acquire short leases, write, pause at random and restart when
// fenced out. Whatever the interleaving, the committed audit log's epochs
// never go back, and each epoch's entries come from the one replica that
// held it.
TEST_F(PostgresLeaseTest, ConcurrentReplicasNeverCommitAStaleEpoch) {
  const int64_t seed = EnvInt("RINGFENCE_LEASE_SEED", 1);
  SCOPED_TRACE(absl::StrCat("RINGFENCE_LEASE_SEED=", seed));
  const absl::Duration run_for =
      absl::Milliseconds(EnvInt("RINGFENCE_LEASE_MILLIS", 2500));
  constexpr int kReplicas = 3;
  PostgresStorePtr init = Open();  // creates the schema once
  ASSERT_NE(init, nullptr);
  std::atomic<int> fenced_writes{0}, takeovers{0}, writes{0};
  // Per takeover: the new epoch, and the last audit seq committed once it
  // was taken. No entry of an older epoch may come after that seq.
  absl::Mutex mu;
  std::vector<std::pair<int64_t, int64_t>> taken_after_seq;
  std::vector<std::thread> threads;
  const absl::Time end = absl::Now() + run_for;
  for (int i = 0; i < kReplicas; ++i) {
    threads.emplace_back([&, i] {
      std::mt19937_64 rng(static_cast<uint64_t>(seed * 1000 + i));
      const std::string id = absl::StrCat("r", i);
      PostgresStorePtr store = Open();
      int64_t held = 0;
      while (absl::Now() < end && store != nullptr) {
        const int op = static_cast<int>(rng() % 10);
        absl::Status fenced;
        if (op < 3) {
          absl::StatusOr<PostgresLease> lease = store->AcquireLease(
              id, absl::Milliseconds(30 + static_cast<int>(rng() % 70)));
          if (lease.ok() && lease->held && held == 0) {
            held = lease->epoch;
            ++takeovers;
            const std::vector<std::string> head = Query(absl::StrCat(
                "SELECT seq FROM ", schema_, ".audit_head WHERE id = 1"));
            int64_t seq = 0;
            EXPECT_TRUE(head.size() == 1 && absl::SimpleAtoi(head[0], &seq));
            absl::MutexLock lock(&mu);
            taken_after_seq.emplace_back(held, seq);
          }
          fenced = lease.status();
        } else if (op < 9) {
          if (held == 0) continue;  // only a leader writes
          fenced = store->AppendAudit(Audit(id, absl::StrCat(held)));
          if (fenced.ok()) ++writes;
          if (absl::IsFailedPrecondition(fenced)) ++fenced_writes;
        } else {
          // A pause, now and then longer than any lease.
          absl::SleepFor(absl::Milliseconds(rng() % 8 == 0 ? 150 : 5));
        }
        if (absl::IsFailedPrecondition(fenced)) {
          store = Open();  // fenced out: exit, and be restarted
          held = 0;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_GT(takeovers.load(), 1) << "no takeover happened: nothing tested";
  const std::vector<std::string> rows =
      Query(absl::StrCat("SELECT epoch || ' ' || actor || ' ' || action || ' ' "
                         "|| seq FROM ",
                         schema_, ".audit ORDER BY seq"));
  int64_t last = 0;
  std::map<int64_t, std::string> writer_of_epoch;
  for (const std::string& row : rows) {
    std::vector<std::string> f = absl::StrSplit(row, ' ');
    ASSERT_EQ(f.size(), 4u) << row;
    int64_t e = 0, claimed = 0, seq = 0;
    ASSERT_TRUE(absl::SimpleAtoi(f[0], &e)) << row;
    ASSERT_TRUE(absl::SimpleAtoi(f[2], &claimed)) << row;
    ASSERT_TRUE(absl::SimpleAtoi(f[3], &seq)) << row;
    for (const auto& [taken, after_seq] : taken_after_seq) {
      if (e < taken) {
        ASSERT_LE(seq, after_seq)
            << "a write of epoch " << e << " committed after epoch " << taken
            << " was taken";
      }
    }
    // The writer held the epoch the row records.
    EXPECT_EQ(e, claimed) << row;
    ASSERT_GE(e, last) << "a write of epoch " << e << " committed after one of "
                       << last;
    last = e;
    auto [it, inserted] = writer_of_epoch.emplace(e, f[1]);
    EXPECT_EQ(it->second, f[1]) << "two writers in epoch " << e;
  }
  std::cout << "concurrent lease run: " << takeovers.load() << " takeovers, "
            << writes.load() << " writes committed, " << fenced_writes.load()
            << " refused (fenced)\n";
}

}  // namespace
}  // namespace ringfence
