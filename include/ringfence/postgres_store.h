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
// Replicas: several processes may share one schema, but only one of them
// should act on it at a time. PostgresStore::AcquireLease elects it with a
// lease row (holder, epoch, expiry by the database's clock), and fences the
// leader's store to its epoch: every later write transaction of that store
// first locks the lease row (FOR SHARE) and checks the epoch, so a leader
// that lost the lease (paused, partitioned, slow) writes nothing once
// another replica took over, whatever its own clock says.
//
// Thread safety: thread-safe. The store owns its connections; the clock
// (options.clock) must outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ringfence/clock.h"
#include "ringfence/cluster.h"
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
  // no limit). Over TCP, the client also drops a connection whose sent data
  // stays unacknowledged for `connect_timeout + statement_timeout` (libpq's
  // tcp_user_timeout) and probes an idle one (keepalives after 10 s, every
  // 5 s, 3 probes), so that a call cut off by a partition fails and the next
  // one reconnects, instead of waiting out the kernel's retransmissions
  // (minutes). A DSN that sets these keywords overrides them.
  absl::Duration statement_timeout = absl::Seconds(10);
  // Time source for the store's own timestamps (checkpoint and migration
  // times); default RealClock(). Must outlive the store. (The lease uses the
  // database's clock.)
  const Clock* clock = nullptr;
  // How long the server lets a session sit idle inside an open transaction
  // before it ends the session, rolling the transaction back and releasing
  // its locks (whole milliseconds; default zero: the server's setting).
  // Replicas set it below the lease TTL, so that a leader paused in the
  // middle of a write (SIGSTOP, a frozen VM) cannot hold the lease row's
  // lock and keep the next leader from taking over.
  absl::Duration idle_in_transaction_timeout = absl::ZeroDuration();
  // Called once, with the FAILED_PRECONDITION, when the store finds its
  // lease epoch superseded (in AcquireLease, or in a write, which was
  // refused), from the thread that found it, after its transaction ended.
  // Default: none. ringfenced exits in it.
  std::function<void(const absl::Status&)> on_superseded;
};

// The latest schema version this build writes (schema_migrations.version).
inline constexpr int kPostgresSchemaVersion = 5;

// PostgresLease: the lease as PostgresStore::AcquireLease left it.
struct PostgresLease {
  // Whether the calling store holds it (just taken or renewed).
  bool held = false;
  // The holder's replica id and the lease's epoch ("" and 0 if it was never
  // taken).
  std::string holder;
  int64_t epoch = 0;
  // Until the lease expires, by the database's clock (negative once it
  // has).
  absl::Duration remaining;
};

// PostgresStore
//
// The Store with the lease that elects one replica to act (see "Replicas"
// above).
//
// Example (what each ringfenced replica does every tick):
//   absl::StatusOr<PostgresLease> lease =
//       store->AcquireLease("host-a:7443", absl::Seconds(10));
//   if (lease.ok() && lease->held) { /* lead: write through the store */ }
class PostgresStore : public Store {
 public:
  // AcquireLease
  //
  // Takes or renews the lease for `replica_id` until `ttl` from now by the
  // database's clock, in one statement:
  //  - a store holding epoch E renews while the lease is still at E (also
  //    if it expired meanwhile and nobody took it);
  //  - a store that never held the lease takes it if it has expired, or at
  //    once if `replica_id` is the holder (a restart of that replica: the
  //    earlier process, alive or not, is fenced out). A new holder always
  //    gets epoch + 1.
  // From its first success on, the store is fenced to that epoch: each of
  // its write transactions locks the lease row FOR SHARE and checks the
  // epoch before writing, so a takeover (which updates the row) waits for
  // the writes in flight and every later write of this store fails with
  // FAILED_PRECONDITION ("fenced: this replica's lease epoch 4 was
  // superseded by epoch 5 ..."), having written nothing. Stores that never
  // called AcquireLease write unchecked.
  //
  // Returns held=false (with the holder) while another replica holds an
  // unexpired lease. Errors: FAILED_PRECONDITION ("fenced: ...") once this
  // store's epoch was superseded: it never leads again (its owner's
  // in-memory state is stale; open a new store, i.e. restart);
  // INVALID_ARGUMENT for an empty replica_id or a ttl under 1ms;
  // UNAVAILABLE etc. as for writes.
  //
  // REQUIRES: no write of this store is in flight when it first takes the
  // lease (such a write began unfenced and commits unchecked). ringfenced
  // writes nothing before it leads.
  virtual absl::StatusOr<PostgresLease> AcquireLease(
      absl::string_view replica_id, absl::Duration ttl) = 0;

  // ReleaseLease
  //
  // Ends this store's lease now if it still holds it, so that another
  // replica takes over at its next attempt instead of after the TTL (a
  // graceful shutdown). The store stays fenced to its epoch. OK if it held
  // no lease or was superseded already.
  virtual absl::Status ReleaseLease() = 0;

  // The epoch this store's writes are fenced to (0: not fenced).
  virtual int64_t fenced_epoch() const = 0;

  // RecordReplica
  //
  // Upserts the row of `replica_id` in the `replicas` table: `address`,
  // whether it leads (this store's fenced epoch is the lease's current,
  // unexpired epoch, judged in the same statement) and last_seen = the
  // database's clock; and deletes the rows of replicas not seen for
  // kForgetReplicasAfter. Not fenced (standbys call it too); it changes
  // nothing but that table. ringfenced calls it after every lease attempt.
  // INVALID_ARGUMENT for an empty replica_id; UNAVAILABLE etc. as for
  // writes.
  virtual absl::Status RecordReplica(absl::string_view replica_id,
                                     absl::string_view address) = 0;

  // ReadCluster
  //
  // The lease and the recorded replicas (ClusterView). A read: any replica
  // may call it, leading or not.
  virtual absl::StatusOr<ClusterView> ReadCluster() = 0;
};

using PostgresStorePtr = std::unique_ptr<PostgresStore>;

// OpenPostgresStore
//
// Connects to the database, creates `options.schema` if missing and migrates
// it to kPostgresSchemaVersion.
//
// Errors: INVALID_ARGUMENT for an empty or malformed dsn, a bad schema name
// or pool size; UNAVAILABLE if the server cannot be reached;
// FAILED_PRECONDITION if the schema is newer than this build (or the user
// lacks privileges); others as above.
absl::StatusOr<PostgresStorePtr> OpenPostgresStore(
    const PostgresStoreOptions& options);

}  // namespace ringfence
