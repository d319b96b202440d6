// ReplicaLease: a ringfenced replica's side of the lease on its PostgreSQL
// store (PostgresStore::AcquireLease): standing by until it holds the lease,
// then renewing it on a thread of its own (service/README.md, "Replicas").
//
// After every attempt, leading or not, the replica records itself in the
// store's `replicas` table (PostgresStore::RecordReplica), for cluster
// status.
//
// Losing the lease to a takeover is not handled here: the store, fenced to
// this replica's epoch, refuses every write once another replica took over,
// and calls its on_superseded (ringfenced logs and exits there), whether a
// renewal or a write found out first.
//
// Not knowing whether it still leads is: a leader cut off from PostgreSQL
// (a partition, the database down) cannot renew, and cannot learn that
// another replica took over, yet still holds its rollouts in memory and
// would go on answering hosts from them (a release that the new leader has
// meanwhile halted). CheckHeld says how long the lease surely lasts, by
// this replica's own monotonic clock: from the *start* of the last renewal
// that succeeded (the database counted the TTL from a later instant) plus
// what the database said remained, less a margin of a twentieth of the TTL
// for the two clocks' rates. Past that instant it fails, until a renewal
// succeeds again (nobody took over: the same epoch goes on, no restart) or
// the store finds the epoch superseded. ringfenced fails Fleet calls with it
// and reports Fleet NOT_SERVING (server.h, ServerOptions::authority). A
// renewal that hangs (packets dropped) is no different from one that
// fails: the time runs out either way.
//
// Example:
//   ReplicaLeaseOptions options;
//   options.replica_id = "db-a:7443";
//   options.log = Log;
//   options.address = "db-a.example:7443";
//   ReplicaLease lease(store, options);
//   absl::StatusOr<int64_t> epoch = lease.WaitUntilLeading(
//       [](absl::Duration d) { return StopRequestedWithin(d); },
//       [&](const std::string& leader) { standby->SetMessage(leader); });
//   if (epoch.ok()) lease.StartRenewing();
//   ...
//   lease.Release();  // at shutdown, once nothing writes
//
// Thread safety: WaitUntilLeading, StartRenewing and Release are called
// from one thread, in that order. The store must outlive the ReplicaLease.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "ringfence/clock.h"
#include "ringfence/postgres_store.h"

namespace ringfence {

struct ReplicaLeaseOptions {
  // This replica's id in the lease (required).
  std::string replica_id;
  // How long a taken or renewed lease lasts (by the database's clock).
  absl::Duration ttl = absl::Seconds(10);
  // Between attempts while standing by, and between renewals.
  absl::Duration interval = absl::Seconds(1);
  // Where to report changes (who leads, errors): each distinct message once.
  std::function<void(const std::string&)> log;
  // The gRPC address this replica advertises in the `replicas` table
  // (PostgresStore::RecordReplica, after every attempt to take or renew the
  // lease). Default "": none.
  std::string address;
  // For how long the lease surely lasts (CheckHeld); default
  // MonotonicClock(), which a stepped wall clock does not move. Must outlive
  // the ReplicaLease.
  const Clock* clock = nullptr;
};

class ReplicaLease {
 public:
  ReplicaLease(PostgresStore* store, ReplicaLeaseOptions options);
  // Stops renewing (the lease then expires after its TTL, unless the
  // process ends and a restart under the same replica id takes it over).
  ~ReplicaLease();
  ReplicaLease(const ReplicaLease&) = delete;
  ReplicaLease& operator=(const ReplicaLease&) = delete;

  // WaitUntilLeading
  //
  // Tries to take the lease at once, then after each `wait(interval)`,
  // until this replica holds it: returns the epoch. A lease held under this
  // replica's id is taken over at once (a restart of this replica) only if
  // the holder advertised the same address; a live holder advertising
  // another one is another process with the same id, and this one stands
  // by (saying so) until that lease expires. After each attempt that
  // did not lead, `standing_by` gets who leads ("replica \"db-a:7443\" leads
  // (lease epoch 4)") or why the lease could not be read. If `wait` returns
  // true (asked to stop), returns CANCELLED. A superseded store's
  // FAILED_PRECONDITION is returned as is.
  absl::StatusOr<int64_t> WaitUntilLeading(
      const std::function<bool(absl::Duration)>& wait,
      const std::function<void(const std::string&)>& standing_by);

  // StartRenewing
  //
  // Renews the lease every interval on a thread of its own until Release
  // or destruction. REQUIRES: WaitUntilLeading returned an epoch.
  void StartRenewing();

  // Release
  //
  // Stops renewing and ends the lease now, for a standby to take over at
  // its next attempt (a graceful shutdown; call it once this replica writes
  // no more).
  absl::Status Release();

  // CheckHeld
  //
  // OK while this replica surely still holds the lease (see the top of this
  // file); UNAVAILABLE otherwise, saying since when it may have expired
  // ("this replica may no longer lead: its lease was last renewed 3.2s ago
  // and may have expired 1.3s ago; ..."). Before WaitUntilLeading returned
  // an epoch, and after Release: UNAVAILABLE. Safe from any thread.
  absl::Status CheckHeld() const;

 private:
  // AcquireLease, noting until when the lease surely lasts if it is held.
  absl::StatusOr<PostgresLease> Acquire();
  // Why not to take the lease now although it is held under this replica's
  // id: the live holder advertises another address (another process with
  // the same --replica_id); nullopt if there is no such holder (or the
  // cluster cannot be read, or this replica advertises no address).
  std::optional<std::string> DuplicateHolder();

  void Log(const std::string& message);
  // RecordReplica, logging a failure (once per distinct error).
  void Record();

  PostgresStore* const store_;
  const ReplicaLeaseOptions options_;
  std::string last_logged_;        // used by one thread at a time
  std::string last_record_error_;  // likewise
  const Clock* const clock_;
  // By clock_: when the last successful attempt started, and until when the
  // lease surely lasts (absl::ToUnixNanos; INT64_MIN: not held).
  std::atomic<int64_t> renewed_at_ns_{INT64_MIN};
  std::atomic<int64_t> held_until_ns_{INT64_MIN};
  absl::Notification stop_;
  std::thread renewer_;
};

}  // namespace ringfence
