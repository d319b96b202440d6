#include "store/postgres_lease.h"

#include "absl/strings/str_cat.h"
#include "ringfence/error_text.h"
#include "ringfence/status_macros.h"

namespace ringfence::internal {
namespace {

// The columns every statement returns, in LeaseRow's order.
#define RINGFENCE_LEASE_COLUMNS                           \
  "holder, epoch, CAST(EXTRACT(EPOCH FROM (expires_at - " \
  "clock_timestamp())) * 1000000 AS BIGINT)"

LeaseRow RowOf(const Result& r) {
  LeaseRow row;
  row.holder = r.Text(0, 0);
  row.epoch = r.Int(0, 1);
  row.remaining = absl::Microseconds(r.Int(0, 2));
  return row;
}

}  // namespace

absl::StatusOr<LeaseRow> UpdateLeaseOn(Conn& c, absl::string_view replica_id,
                                       int64_t held_epoch, absl::Duration ttl,
                                       bool* updated) {
  // $2 = 0 for a caller that holds no epoch: no row has epoch 0 and a
  // holder, so the first alternative is then false. clock_timestamp(), not
  // now(): a statement that waited for a fenced writer's lock judges expiry
  // when the lock is granted, not when the statement began.
  Params p;
  p.Text(replica_id).Int(held_epoch).Int(absl::ToInt64Microseconds(ttl));
  ASSIGN_OR_RETURN(
      Result r,
      c.Exec("updating the lease",
             "UPDATE lease SET "
             "epoch = CASE WHEN epoch = $2 AND holder = $1 THEN epoch "
             "ELSE epoch + 1 END, "
             "holder = $1, renewed_at = clock_timestamp(), "
             "expires_at = clock_timestamp() + $3 * INTERVAL '1 microsecond' "
             "WHERE id = 1 AND ((epoch = $2 AND holder = $1) OR ($2 = 0 AND "
             "(holder = $1 OR expires_at <= clock_timestamp()))) "
             "RETURNING " RINGFENCE_LEASE_COLUMNS,
             p));
  *updated = r.rows() == 1;
  if (*updated) return RowOf(r);
  ASSIGN_OR_RETURN(Result now,
                   c.Exec("reading the lease", "SELECT " RINGFENCE_LEASE_COLUMNS
                                               " FROM lease WHERE id = 1"));
  if (now.rows() != 1) return absl::DataLossError("the lease row is missing");
  return RowOf(now);
}

absl::Status ExpireLeaseOn(Conn& c, int64_t epoch) {
  Params p;
  p.Int(epoch);
  return c
      .Exec("releasing the lease",
            "UPDATE lease SET expires_at = clock_timestamp() WHERE id = 1 AND "
            "epoch = $1",
            p)
      .status();
}

absl::StatusOr<LeaseRow> LockLeaseOn(Conn& c) {
  // FOR SHARE, not FOR KEY SHARE: a takeover changes no key, and must wait.
  ASSIGN_OR_RETURN(Result r, c.Exec("checking the lease epoch",
                                    "SELECT " RINGFENCE_LEASE_COLUMNS
                                    " FROM lease WHERE id = 1 FOR SHARE"));
  if (r.rows() != 1) return absl::DataLossError("the lease row is missing");
  return RowOf(r);
}

absl::Status SupersededError(int64_t epoch, const LeaseRow& now,
                             absl::string_view consequence) {
  return absl::FailedPreconditionError(absl::StrCat(
      "fenced: this replica's lease epoch ", epoch, " was superseded by epoch ",
      now.epoch, " (held by ", QuoteForError(now.holder), "); ", consequence));
}

absl::StatusOr<Result> RecordReplicaOn(Conn& c, absl::string_view replica_id,
                                       absl::string_view address,
                                       int64_t held_epoch,
                                       absl::Duration forget_after) {
  // INSERT ... SELECT ... ON CONFLICT: PostgreSQL 9.5+ and SQLite 3.24+.
  Params p;
  p.Text(replica_id).Text(address).Int(held_epoch);
  ASSIGN_OR_RETURN(
      Result r,
      c.Exec(
          "recording the replica",
          "INSERT INTO replicas(replica_id, address, role, epoch, "
          "last_seen) "
          "SELECT $1, $2, CASE WHEN leads THEN 'leader' ELSE 'standby' END, "
          "CASE WHEN leads THEN $3 ELSE 0 END, clock_timestamp() "
          "FROM (SELECT ($3 > 0 AND epoch = $3 AND holder = $1 AND "
          "expires_at > clock_timestamp()) AS leads FROM lease WHERE id = 1) "
          "AS l "
          "ON CONFLICT (replica_id) DO UPDATE SET address = "
          "EXCLUDED.address, role = EXCLUDED.role, epoch = EXCLUDED.epoch, "
          "last_seen = EXCLUDED.last_seen",
          p));
  Params f;
  f.Int(absl::ToInt64Microseconds(forget_after));
  RETURN_IF_ERROR(c.Exec("forgetting replicas not seen for long",
                         "DELETE FROM replicas WHERE last_seen < "
                         "clock_timestamp() - $1 * INTERVAL '1 microsecond'",
                         f)
                      .status());
  return r;
}

absl::StatusOr<ClusterView> ReadClusterOn(Conn& c, int max_replicas) {
  // One statement: the lease and the replicas from one snapshot. A lease
  // without replicas gives one row of NULLs (COALESCE'd; replica_id "").
  Params p;
  p.Int(max_replicas);
  ASSIGN_OR_RETURN(
      Result r,
      c.Exec("reading the cluster",
             "SELECT l.holder, l.epoch, CAST(EXTRACT(EPOCH FROM "
             "(l.expires_at - clock_timestamp())) * 1000000 AS BIGINT), "
             "CAST(EXTRACT(EPOCH FROM (clock_timestamp() - l.renewed_at)) * "
             "1000000 AS BIGINT), COALESCE(r.replica_id, ''), "
             "COALESCE(r.address, ''), COALESCE(r.role, ''), "
             "COALESCE(r.epoch, 0), COALESCE(CAST(EXTRACT(EPOCH FROM "
             "(clock_timestamp() - r.last_seen)) * 1000000 AS BIGINT), 0) "
             "FROM lease AS l LEFT JOIN (SELECT * FROM replicas ORDER BY "
             "last_seen DESC, replica_id LIMIT $1) AS r ON TRUE WHERE l.id = 1 "
             "ORDER BY r.last_seen DESC, r.replica_id",
             p));
  if (r.rows() < 1) return absl::DataLossError("the lease row is missing");
  ClusterView view;
  const LeaseRow lease = RowOf(r);
  view.holder = lease.holder;
  view.epoch = lease.epoch;
  view.expires_in = lease.remaining;
  view.since_renewal = absl::Microseconds(r.Int(0, 3));
  for (int i = 0; i < r.rows(); ++i) {
    if (r.Text(i, 4).empty()) continue;
    ReplicaRecord& rep = view.replicas.emplace_back();
    rep.replica_id = r.Text(i, 4);
    rep.address = r.Text(i, 5);
    rep.leader = r.Text(i, 6) == "leader";
    rep.epoch = r.Int(i, 7);
    rep.last_seen_age = absl::Microseconds(r.Int(i, 8));
  }
  return view;
}

#undef RINGFENCE_LEASE_COLUMNS

}  // namespace ringfence::internal
