// ReplicaLease: a ringfenced replica's side of the lease on its PostgreSQL
// store (PostgresStore::AcquireLease): standing by until it holds the lease,
// then renewing it on a thread of its own (service/README.md, "Replicas").
//
// After every attempt, leading or not, the replica records itself in the
// store's `replicas` table (PostgresStore::RecordReplica), for cluster
// status.
//
// Losing the lease is not handled here: the store, fenced to this replica's
// epoch, refuses every write once another replica took over, and calls its
// on_superseded (ringfenced logs and exits there), whether a renewal or a
// write found out first.
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

#include <functional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
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
  // until this replica holds it: returns the epoch. After each attempt that
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

 private:
  void Log(const std::string& message);
  // RecordReplica, logging a failure (once per distinct error).
  void Record();

  PostgresStore* const store_;
  const ReplicaLeaseOptions options_;
  std::string last_logged_;        // used by one thread at a time
  std::string last_record_error_;  // likewise
  absl::Notification stop_;
  std::thread renewer_;
};

}  // namespace ringfence
