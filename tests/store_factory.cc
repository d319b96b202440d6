#include "store_factory.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "ringfence/audit.h"
#include "ringfence/postgres_store.h"
#include "ringfence/sqlite_store.h"

namespace ringfence::testing {
namespace {}  // namespace

// Derived from the directory, so reopening over the same directory finds
// the same data.
std::string TestPostgresSchema(const std::string& dir) {
  return absl::StrCat("t_", Sha256Hex(dir).substr(0, 24));
}

absl::StatusOr<std::string> TestPostgresDsn() {
  if (const char* dsn = std::getenv("RINGFENCE_TEST_POSTGRES_DSN");
      dsn != nullptr && *dsn != '\0') {
    return std::string(dsn);
  }
  const char* file = std::getenv("RINGFENCE_TEST_POSTGRES_DSN_FILE");
  if (file == nullptr || *file == '\0') {
    return absl::FailedPreconditionError(
        "no PostgreSQL for the postgres store tests: set "
        "RINGFENCE_TEST_POSTGRES_DSN (a libpq connection string) or "
        "RINGFENCE_TEST_POSTGRES_DSN_FILE, or run them through ctest, which "
        "starts a server (scripts/pg-test-server.sh)");
  }
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  std::string dsn(absl::StripAsciiWhitespace(text.str()));
  if (!in || dsn.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("RINGFENCE_TEST_POSTGRES_DSN_FILE ", file,
                     ": cannot read a DSN (did the postgres_server_start "
                     "fixture run and succeed?)"));
  }
  return dsn;
}

absl::Status ExecTestSql(const std::string& dsn, const std::string& sql) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> c(PQconnectdb(dsn.c_str()),
                                               PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to the test PostgreSQL: ", PQerrorMessage(c.get())));
  }
  PQsetNoticeProcessor(
      c.get(), [](void*, const char*) {}, nullptr);
  PGresult* r = PQexec(c.get(), sql.c_str());
  const ExecStatusType st = PQresultStatus(r);
  std::string err = PQresultErrorMessage(r);
  PQclear(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    return absl::InternalError(absl::StrCat(sql, ": ", err));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> QueryTestSql(const std::string& dsn,
                                                      const std::string& sql) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> c(PQconnectdb(dsn.c_str()),
                                               PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to the test PostgreSQL: ", PQerrorMessage(c.get())));
  }
  std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(c.get(), sql.c_str()),
                                                   PQclear);
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return absl::InternalError(
        absl::StrCat(sql, ": ", PQresultErrorMessage(r.get())));
  }
  std::vector<std::string> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    out.emplace_back(PQgetvalue(r.get(), i, 0));
  }
  return out;
}

absl::StatusOr<PostgresStorePtr> OpenTestPostgresStore(
    const std::string& dir, PostgresStoreOptions options) {
  absl::StatusOr<std::string> dsn = TestPostgresDsn();
  if (!dsn.ok()) return dsn.status();
  PostgresStoreOptions o = std::move(options);
  o.dsn = *dsn;
  o.schema = TestPostgresSchema(dir);
  // First open over this directory: start from an empty schema (a leftover
  // of an earlier run with the same directory must not leak in).
  const std::filesystem::path marker =
      std::filesystem::path(dir) / "postgres-schema";
  if (!std::filesystem::exists(marker)) {
    absl::Status s = ExecTestSql(
        o.dsn, absl::StrCat("DROP SCHEMA IF EXISTS ", o.schema, " CASCADE"));
    if (!s.ok()) return s;
    std::ofstream(marker) << o.schema << "\n";
  }
  return OpenPostgresStore(o);
}

std::vector<StoreFactory> AllStoreFactories() {
  std::vector<StoreFactory> out;
  out.push_back(
      {"memory", [](const std::string&) { return NewMemoryStore(); }, false});
  out.push_back({"sqlite",
                 [](const std::string& dir) {
                   SqliteStoreOptions o;
                   o.data_dir = dir;
                   auto s = OpenSqliteStore(o);
                   if (!s.ok()) {
                     ADD_FAILURE() << s.status();
                     return StorePtr();
                   }
                   return std::move(*s);
                 },
                 true});
  // Never skipped: without a server these fail and say why.
  out.push_back({"postgres",
                 [](const std::string& dir) {
                   auto s = OpenTestPostgresStore(dir);
                   if (!s.ok()) {
                     ADD_FAILURE() << "postgres store: " << s.status();
                     return StorePtr();
                   }
                   return StorePtr(std::move(*s));
                 },
                 true});
  return out;
}

}  // namespace ringfence::testing
