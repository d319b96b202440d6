// A Store in PostgreSQL, for several ringfenced replicas sharing one
// database.
//
// Client library: libpq (the C client), not libpqxx. libpq reports errors
// as values with their SQLSTATE, which maps directly onto absl::Status
// without exceptions crossing our API; it is the one PostgreSQL client every
// distribution ships, and libpqxx would only add a C++ layer (and a second
// dependency) over it.
//
// Durability and atomicity: every write is one transaction; a transition,
// its decision and its audit entry commit together or not at all, and a
// batch of exposures or host evidence is never half-applied. Durability is
// whatever the server guarantees for a committed transaction.
//
// Several processes: audit sequence numbers and hash links are assigned
// inside the writing transaction while it holds the audit head row
// (`SELECT ... FOR UPDATE`), so concurrent writers in any number of
// processes produce one gapless, correctly chained log. CommitTransition
// locks the rollout row the same way, so its version check holds across
// processes too. Nothing is cached between calls.
//
// Schema: the tables live in `options.schema` (created if missing).
// Versioned migrations are recorded in its `schema_migrations` table and
// applied at open, each in its own transaction; a database whose schema is
// newer than this build fails to open with FAILED_PRECONDITION. The SQL is
// plain (no PL/pgSQL, no advisory locks) so that PostgreSQL-compatible
// databases can run it.
//
// Errors map to canonical codes: unique violation -> ALREADY_EXISTS, lost or
// refused connection -> UNAVAILABLE, statement timeout -> DEADLINE_EXCEEDED,
// serialization failure or deadlock -> UNAVAILABLE (retry), disk full ->
// RESOURCE_EXHAUSTED, missing privilege or read-only server ->
// FAILED_PRECONDITION. Messages never contain the connection string or the
// password.
//
// Connections: a pool of up to `pool_size` connections, opened on demand. A
// call whose connection broke (the server restarted, the backend was
// terminated) fails with UNAVAILABLE and the connection is dropped with
// every idle one; the next call connects afresh. Writes are never retried
// by the store (a commit whose outcome is unknown must not be repeated
// blindly); reads are retried once on a fresh connection.
//
// Thread safety: thread-safe. The store owns its connections; the clock
// (options.clock) must outlive it.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ringfence/clock.h"
#include "ringfence/store.h"

namespace ringfence {

struct PostgresStoreOptions {
  // libpq connection string, keyword/value ("host=/run/postgresql
  // dbname=ringfence user=ringfence") or URI ("postgresql://..."). Required.
  // May hold a password; it is never logged or put in an error message.
  std::string dsn;
  // Schema holding ringfence's tables; created if missing. Lower-case
  // letters, digits and '_', starting with a letter or '_', at most 63
  // characters (default "ringfence").
  std::string schema = "ringfence";
  // Most connections open at once; callers beyond it wait up to
  // `connect_timeout + statement_timeout` for one (default 4).
  int pool_size = 4;
  // Limit on establishing one connection (default 5s; whole seconds, at
  // least 2, as libpq counts them).
  absl::Duration connect_timeout = absl::Seconds(5);
  // Limit on one statement, enforced by the server (default 10s; zero means
  // no limit).
  absl::Duration statement_timeout = absl::Seconds(10);
  // Time source for the store's own timestamps (checkpoint and migration
  // times); default RealClock(). Must outlive the store.
  const Clock* clock = nullptr;
};

// The latest schema version this build writes (schema_migrations.version).
inline constexpr int kPostgresSchemaVersion = 1;

// OpenPostgresStore
//
// Connects to the database, creates `options.schema` if missing and migrates
// it to kPostgresSchemaVersion.
//
// Errors: INVALID_ARGUMENT for an empty or malformed dsn, a bad schema name
// or pool size; UNAVAILABLE if the server cannot be reached;
// FAILED_PRECONDITION if the schema is newer than this build (or the user
// lacks privileges); others as above.
absl::StatusOr<StorePtr> OpenPostgresStore(const PostgresStoreOptions& options);

}  // namespace ringfence
