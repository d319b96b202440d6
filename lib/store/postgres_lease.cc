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
             "holder = $1, "
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

#undef RINGFENCE_LEASE_COLUMNS

}  // namespace ringfence::internal
