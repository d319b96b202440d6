// PostgreSQL-specific store tests (the Store contract itself runs in
// store_test over every factory): migrations, several stores ("processes")
// sharing one schema, lost connections, and secrets kept out of errors.
// Needs a server: see TestPostgresDsn() in store_factory.h.
#include "ringfence/postgres_store.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/audit.h"
#include "status_matchers.h"
#include "store_factory.h"

namespace ringfence {
namespace {

using ::ringfence::testing::ExecTestSql;
using ::ringfence::testing::OpenTestPostgresStore;
using ::ringfence::testing::StatusIs;
using ::ringfence::testing::TestPostgresDsn;
using ::testing::HasSubstr;
using ::testing::Not;

// The first column of the first row of `sql`, as an integer (-1 if none).
absl::StatusOr<int64_t> QueryInt(const std::string& dsn,
                                 const std::string& sql) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> c(PQconnectdb(dsn.c_str()),
                                               PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK) {
    return absl::UnavailableError(PQerrorMessage(c.get()));
  }
  std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(c.get(), sql.c_str()),
                                                   PQclear);
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return absl::InternalError(
        absl::StrCat(sql, ": ", PQresultErrorMessage(r.get())));
  }
  if (PQntuples(r.get()) == 0) return -1;
  return std::strtoll(PQgetvalue(r.get(), 0, 0), nullptr, 10);
}

AuditEntry Audit(const std::string& action) {
  AuditEntry a;
  a.set_actor("tester");
  a.set_action(action);
  return a;
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dsn = TestPostgresDsn();
    ASSERT_TRUE(dsn.ok()) << dsn.status();
    dsn_ = *dsn;
    dir_ =
        (std::filesystem::path(::testing::TempDir()) /
         absl::StrCat(
             "postgres_store_test_", getpid(), "_",
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
            .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  StorePtr Open() {
    absl::StatusOr<StorePtr> s = OpenTestPostgresStore(dir_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  // The schema OpenTestPostgresStore chose (it records it in the dir).
  std::string Schema() {
    std::string s;
    std::ifstream(std::filesystem::path(dir_) / "postgres-schema") >> s;
    return s;
  }

  std::string dsn_;
  std::string dir_;
};

TEST_F(PostgresStoreTest, MigrationsRunOnceAndReopenKeepsData) {
  StorePtr store = Open();
  ASSERT_NE(store, nullptr);
  Release r;
  r.set_id("rel-1");
  ASSERT_OK(store->PutRelease(r, Audit("create_release")));
  const std::string count =
      absl::StrCat("SELECT COUNT(*) FROM ", Schema(), ".schema_migrations");
  auto n = QueryInt(dsn_, count);
  ASSERT_OK(n);
  EXPECT_EQ(*n, kPostgresSchemaVersion);
  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  n = QueryInt(dsn_, count);
  ASSERT_OK(n);
  EXPECT_EQ(*n, kPostgresSchemaVersion);
  ASSERT_OK(store->GetRelease("rel-1"));
  // The audit chain continues where it stopped.
  ASSERT_OK(store->AppendAudit(Audit("after_reopen")));
  auto audit = store->ReadAudit(0, 10);
  ASSERT_OK(audit);
  ASSERT_EQ(audit->size(), 2u);
  EXPECT_EQ((*audit)[1].seq(), 2u);
  auto verified = VerifyAuditLog(*store);
  ASSERT_OK(verified);
  EXPECT_TRUE(verified->ok) << verified->problem;
}

TEST_F(PostgresStoreTest, NewerSchemaIsRefused) {
  ASSERT_NE(Open(), nullptr);
  ASSERT_OK(ExecTestSql(
      dsn_, absl::StrCat("INSERT INTO ", Schema(),
                         ".schema_migrations(version, applied_at_ns) VALUES(",
                         kPostgresSchemaVersion + 1, ", 0)")));
  EXPECT_THAT(OpenTestPostgresStore(dir_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("newer than this build supports")));
}

// Two stores over one schema stand for two ringfenced processes: their
// concurrent appends form one gapless, correctly chained log.
TEST_F(PostgresStoreTest, ConcurrentWritersInTwoStoresKeepTheAuditChain) {
  StorePtr a = Open();
  StorePtr b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  constexpr int kThreads = 4;
  constexpr int kEach = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    Store* store = t % 2 == 0 ? a.get() : b.get();
    threads.emplace_back([store, t, &failures] {
      for (int i = 0; i < kEach; ++i) {
        absl::Status s;
        if (i % 4 == 0) {
          EmergencyStop stop{absl::StrCat("type-", t), "ops", "r",
                             absl::FromUnixSeconds(1)};
          s = store->SetEmergencyStop(stop, Audit(absl::StrCat(t, "/", i)));
        } else {
          s = store->AppendAudit(Audit(absl::StrCat(t, "/", i)));
        }
        if (!s.ok()) {
          ADD_FAILURE() << s;
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  for (Store* store : {a.get(), b.get()}) {
    auto verified = VerifyAuditLog(*store);
    ASSERT_OK(verified);
    EXPECT_TRUE(verified->ok) << verified->problem;
    EXPECT_EQ(verified->entries, uint64_t{kThreads * kEach});
  }
}

// A rollout's version check holds across processes: of several writers
// holding the same version, exactly one wins.
TEST_F(PostgresStoreTest, OneOfConcurrentTransitionsWins) {
  StorePtr a = Open();
  StorePtr b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Rollout r;
  r.set_id("ro-1");
  r.set_version(1);
  ASSERT_OK(a->CreateRollout(r, Audit("start")));
  std::atomic<int> ok{0}, aborted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    Store* store = t % 2 == 0 ? a.get() : b.get();
    threads.emplace_back([store, t, &ok, &aborted] {
      Rollout next;
      next.set_id("ro-1");
      next.set_version(2);
      next.set_release_id(absl::StrCat("winner-", t));
      absl::Status s = store->CommitTransition(next, 1, Audit("t"), nullptr);
      if (s.ok()) ++ok;
      if (absl::IsAborted(s)) ++aborted;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(aborted.load(), 5);
  auto audit = a->ReadAudit(0, 100);
  ASSERT_OK(audit);
  EXPECT_EQ(audit->size(), 2u);  // start + the one winner
}

// A batch is one transaction: a bad row (invalid UTF-8) in a later chunk
// leaves none of the batch behind.
TEST_F(PostgresStoreTest, ExposureBatchesAreAllOrNothing) {
  StorePtr store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<Exposure> batch;
  for (int i = 0; i < 1200; ++i) {
    batch.push_back({absl::StrCat("h-", i), 0, absl::FromUnixSeconds(i)});
  }
  batch.back().host_id = "bad\xff";
  EXPECT_THAT(store->RecordExposures("ro-1", batch),
              StatusIs(absl::StatusCode::kInvalidArgument));
  auto got = store->ListExposures("ro-1");
  ASSERT_OK(got);
  EXPECT_TRUE(got->empty());
  batch.pop_back();
  ASSERT_OK(store->RecordExposures("ro-1", batch));
  got = store->ListExposures("ro-1");
  ASSERT_OK(got);
  EXPECT_EQ(got->size(), 1199u);
}

// The backend behind the store is terminated (as by a server restart): the
// next call fails with UNAVAILABLE or succeeds on a new connection, and later
// calls work without reopening the store.
TEST_F(PostgresStoreTest, RecoversFromAKilledConnection) {
  const std::string app = absl::StrCat("rf_kill_", getpid());
  PostgresStoreOptions o;
  o.dsn = absl::StrCat(dsn_, " application_name=", app);
  o.schema = "kill_test_" + std::to_string(getpid());
  o.pool_size = 1;
  auto opened = OpenPostgresStore(o);
  ASSERT_OK(opened);
  StorePtr store = std::move(*opened);
  ASSERT_OK(store->AppendAudit(Audit("before")));

  const auto kill = [&] {
    const std::string where =
        absl::StrCat("FROM pg_stat_activity WHERE application_name = '", app,
                     "' AND pid <> pg_backend_pid()");
    ASSERT_OK(
        QueryInt(dsn_, "SELECT COUNT(pg_terminate_backend(pid)) " + where));
    // Wait until the backend is gone.
    for (int i = 0; i < 100; ++i) {
      auto n = QueryInt(dsn_, "SELECT COUNT(*) " + where);
      ASSERT_OK(n);
      if (*n == 0) return;
      absl::SleepFor(absl::Milliseconds(50));
    }
    FAIL() << "the backend did not exit";
  };

  kill();
  absl::Status s = store->AppendAudit(Audit("maybe"));
  EXPECT_TRUE(s.ok() || absl::IsUnavailable(s)) << s;
  const int maybe = s.ok() ? 1 : 0;
  ASSERT_OK(store->AppendAudit(Audit("after")));
  ASSERT_OK(store->Probe());

  kill();
  // Reads retry once on a fresh connection.
  auto audit = store->ReadAudit(0, 100);
  ASSERT_OK(audit);
  EXPECT_EQ(audit->size(), static_cast<size_t>(2 + maybe));
  auto verified = VerifyAuditLog(*store);
  ASSERT_OK(verified);
  EXPECT_TRUE(verified->ok) << verified->problem;
  ASSERT_OK(ExecTestSql(dsn_, "DROP SCHEMA " + o.schema + " CASCADE"));
}

// A server restart kills every pooled connection at once: the first call to
// find its connection dead drops the idle ones too, so only that call fails.
TEST_F(PostgresStoreTest, ADeadConnectionDropsTheIdleOnes) {
  const std::string app = absl::StrCat("rf_pool_", getpid());
  PostgresStoreOptions o;
  o.dsn = absl::StrCat(dsn_, " application_name=", app);
  o.schema = "pool_test_" + std::to_string(getpid());
  o.pool_size = 4;
  auto opened = OpenPostgresStore(o);
  ASSERT_OK(opened);
  StorePtr store = std::move(*opened);
  // Open several connections: concurrent writers.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 10; ++i) {
        EXPECT_OK(store->AppendAudit(Audit(absl::StrCat(t, "/", i))));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const std::string where =
      absl::StrCat("FROM pg_stat_activity WHERE application_name = '", app,
                   "' AND pid <> pg_backend_pid()");
  auto open = QueryInt(dsn_, "SELECT COUNT(*) " + where);
  ASSERT_OK(open);
  ASSERT_GE(*open, 2) << "the test needs several pooled connections";
  ASSERT_OK(QueryInt(dsn_, "SELECT COUNT(pg_terminate_backend(pid)) " + where));
  for (int i = 0; i < 100; ++i) {
    auto n = QueryInt(dsn_, "SELECT COUNT(*) " + where);
    ASSERT_OK(n);
    if (*n == 0) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  absl::Status first = store->AppendAudit(Audit("first"));
  EXPECT_THAT(first, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(first.message()),
              Not(HasSubstr("ringfence-test-secret")));
  ASSERT_OK(store->AppendAudit(Audit("second")));
  ASSERT_OK(store->Probe());
  auto verified = VerifyAuditLog(*store);
  ASSERT_OK(verified);
  EXPECT_TRUE(verified->ok) << verified->problem;
  EXPECT_EQ(verified->entries, 41u);
  store.reset();
  ASSERT_OK(ExecTestSql(dsn_, "DROP SCHEMA " + o.schema + " CASCADE"));
}

// Passwords never appear in errors: wrong password (the user name equals
// it, so libpq's message would echo it), unreachable server, malformed DSN.
TEST_F(PostgresStoreTest, ErrorsNeverContainThePassword) {
  const std::string secret = "Sekr1t-pw-4711";
  for (const std::string& dsn :
       {absl::StrCat(dsn_, " user=", secret, " password=", secret),
        absl::StrCat("host=/nonexistent-ringfence-dir password=", secret),
        absl::StrCat("postgresql://ringfence:", secret,
                     "@/ringfence_test?host=/nonexistent-ringfence-dir"),
        absl::StrCat("host=x password=", secret, " bogus_keyword=1"),
        absl::StrCat("host=x password='", secret)}) {
    PostgresStoreOptions o;
    o.dsn = dsn;
    o.connect_timeout = absl::Seconds(2);
    absl::StatusOr<StorePtr> s = OpenPostgresStore(o);
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(std::string(s.status().message()), Not(HasSubstr(secret)))
        << "(the dsn is not printed)";
    EXPECT_THAT(std::string(s.status().message()),
                Not(HasSubstr("nonexistent-ringfence-dir=")));
    EXPECT_TRUE(absl::IsUnavailable(s.status()) ||
                absl::IsInvalidArgument(s.status()))
        << s.status().code();
    if (absl::StrContains(dsn, "user=")) {
      // libpq named the user: the redaction, not luck, kept it out.
      EXPECT_THAT(std::string(s.status().message()), HasSubstr("<redacted>"));
    }
  }
  // And the store's own errors on a good connection.
  StorePtr store = Open();
  ASSERT_NE(store, nullptr);
  Release r;
  r.set_id("rel-1");
  ASSERT_OK(store->PutRelease(r, Audit("a")));
  EXPECT_THAT(store->PutRelease(r, Audit("a")),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       Not(HasSubstr("ringfence-test-secret"))));
}

TEST_F(PostgresStoreTest, UnreachableServerIsUnavailable) {
  PostgresStoreOptions o;
  o.dsn = "host=/nonexistent-ringfence-dir dbname=x";
  EXPECT_THAT(OpenPostgresStore(o),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("cannot connect to PostgreSQL")));
}

TEST_F(PostgresStoreTest, BadOptionsAreInvalidArguments) {
  PostgresStoreOptions o;
  EXPECT_THAT(OpenPostgresStore(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dsn")));
  o.dsn = dsn_;
  o.schema = "Bad-Name";
  EXPECT_THAT(OpenPostgresStore(o), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("\"Bad-Name\"")));
  o.schema = "ok";
  o.pool_size = 0;
  EXPECT_THAT(OpenPostgresStore(o), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("pool_size")));
}

}  // namespace
}  // namespace ringfence
