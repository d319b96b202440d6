// The lease that elects one writer among the replicas sharing a PostgreSQL
// schema, and the fence every write of a leader checks (the SQL under
// PostgresStore::AcquireLease, postgres_store.h).
//
// The lease is one row (table `lease`, id 1, created by migration 2 in
// postgres_store.cc): the holder's
// replica id, an epoch that grows by one with every new holder, and when it
// expires. Time is the database's (clock_timestamp()), never a replica's, so
// replicas with skewed clocks agree on expiry. Safety does not rest on time
// at all: a leader's write transaction first locks the row FOR SHARE and
// checks that the epoch is still its own. A takeover updates the row, which
// waits for those locks, so every write of the old epoch commits before the
// new epoch exists, and none after it.
//
// Thread safety: functions of a Conn, which one thread uses at a time.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ringfence/cluster.h"
#include "store/postgres_conn.h"

namespace ringfence::internal {

// The lease row as the database sees it.
struct LeaseRow {
  std::string holder;  // "" if never taken
  int64_t epoch = 0;   // 0 if never taken
  // expires_at - clock_timestamp(): negative once expired.
  absl::Duration remaining;
};

// UpdateLeaseOn
//
// One statement (its own transaction). With `held_epoch` > 0 (the caller
// holds that epoch): renews the lease for `ttl` if it is still at that epoch.
// With `held_epoch` == 0: takes it with epoch + 1 if it has expired or
// `replica_id` holds it (a restart of that replica). Sets `*updated` to
// whether the row was renewed or taken, and returns the row after the
// statement.
absl::StatusOr<LeaseRow> UpdateLeaseOn(Conn& c, absl::string_view replica_id,
                                       int64_t held_epoch, absl::Duration ttl,
                                       bool* updated);

// ExpireLeaseOn
//
// One statement: makes the lease expire now if it is still at `epoch`.
absl::Status ExpireLeaseOn(Conn& c, int64_t epoch);

// LockLeaseOn
//
// The first statement of a fenced write transaction: locks the lease row FOR
// SHARE (until the transaction ends) and returns it. The caller compares its
// epoch.
absl::StatusOr<LeaseRow> LockLeaseOn(Conn& c);

// SupersededError
//
// FAILED_PRECONDITION: "fenced: this replica's lease epoch 4 was superseded
// by epoch 5 (held by "r2"); <consequence>".
absl::Status SupersededError(int64_t epoch, const LeaseRow& now,
                             absl::string_view consequence);

// RecordReplicaOn
//
// Two statements (each its own transaction): upserts the row of
// `replica_id` in `replicas` (role "leader" with `held_epoch` if that is the
// lease's current unexpired epoch and `replica_id` its holder, else
// "standby" with epoch 0; last_seen = the database's clock), then deletes
// rows not seen for `forget_after`. Returns the upsert's result.
absl::StatusOr<Result> RecordReplicaOn(Conn& c, absl::string_view replica_id,
                                       absl::string_view address,
                                       int64_t held_epoch,
                                       absl::Duration forget_after);

// ReadClusterOn
//
// The lease and at most `max_replicas` replicas, most recently seen first,
// in one statement.
absl::StatusOr<ClusterView> ReadClusterOn(Conn& c, int max_replicas);

}  // namespace ringfence::internal
