// Store factories for parameterized suites: every controller test runs on
// every Store implementation.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ringfence/postgres_store.h"
#include "ringfence/store.h"

namespace ringfence::testing {

struct StoreFactory {
  std::string name;
  // Opens a store over `dir` (a fresh temporary directory per test). Opening
  // again over the same `dir` must see what the previous store committed.
  std::function<StorePtr(const std::string& dir)> open;
  // Whether reopening sees the data (false for the in-memory store, where the
  // test keeps the same instance instead).
  bool persistent = false;
};

// memory, sqlite and postgres. The postgres factory needs a server: its DSN
// from RINGFENCE_TEST_POSTGRES_DSN or the file named by
// RINGFENCE_TEST_POSTGRES_DSN_FILE (ctest sets the latter and starts the
// server); without one, opening fails the test with the reason.
std::vector<StoreFactory> AllStoreFactories();

// TestPostgresDsn: the test server's DSN, or FAILED_PRECONDITION saying how
// to provide one.
absl::StatusOr<std::string> TestPostgresDsn();

// OpenTestPostgresStore: a PostgreSQL store in a schema derived from `dir`
// (emptied on the first open over `dir`, kept on later ones), with
// `options` but for its dsn and schema.
absl::StatusOr<PostgresStorePtr> OpenTestPostgresStore(
    const std::string& dir, PostgresStoreOptions options = {});

// TestPostgresSchema: the schema OpenTestPostgresStore uses for `dir`.
std::string TestPostgresSchema(const std::string& dir);

// ExecTestSql: runs `sql` on a fresh connection to `dsn` (test set-up and
// fault injection).
absl::Status ExecTestSql(const std::string& dsn, const std::string& sql);

// QueryTestSql: runs `sql` on a fresh connection to `dsn` and returns the
// first column of every row, as text (NULL as "").
absl::StatusOr<std::vector<std::string>> QueryTestSql(const std::string& dsn,
                                                      const std::string& sql);

// For readable test names in failure messages.
inline void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

}  // namespace ringfence::testing
