// What a ringfenced replica on PostgreSQL does before it leads
// (service/README.md, "Replicas"): it serves as a standby (a follower: Fleet
// GetAssignment from a snapshot of the store, what needs the leader
// forwarded to it; every other call UNAVAILABLE naming the leader) and tries
// to take the lease every tick until it holds it. Then ringfenced restores
// the state, shuts the standby down and serves on its port.
//
// Example:
//   ReplicaStartupOptions options;
//   options.store = postgres_store;
//   options.server = &server_options;  // listen, tls, auth, cluster
//   options.wait = [&](absl::Duration d) { return StopRequestedWithin(d); };
//   absl::StatusOr<ReplicaStartup> started = StandByUntilLeading(options);
//   if (absl::IsCancelled(started.status())) { /* stopped while waiting */ }
//   ... restore the state ...
//   started->standby->Shutdown();
//   auto server = Server::Start(controller, std::move(server_options));
//
// Thread safety: call from one thread; the callbacks run on it, except
// `log`, which the standby's poller and the lease call too.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ringfence/follower.h"
#include "ringfence/model.h"
#include "ringfence/postgres_store.h"
#include "service/replica_lease.h"
#include "service/server.h"
#include "service/standby_server.h"

namespace ringfence {

struct ReplicaStartupOptions {
  // The store (required; must outlive the ReplicaStartup's members).
  PostgresStore* store = nullptr;
  // What the standby listens on and how it authenticates, from the
  // server's options (listen, tls, auth, cluster). StandByUntilLeading
  // fills in cluster.replica_id and cluster.address (the server listens
  // on the standby's port under the same names) and points listen at the
  // standby's bound port. Required.
  ServerOptions* server = nullptr;
  // The hosts' fleet (labels, tenants), as the controller's.
  FleetConfig fleet;
  absl::Duration lease_ttl = absl::Seconds(10);
  // Between attempts to take the lease (ringfenced: its tick).
  absl::Duration tick = absl::Seconds(1);
  // Follower::Options::max_staleness and StandbyServer's FollowerServing.
  absl::Duration follower_poll = absl::Milliseconds(250);
  absl::Duration follower_staleness = absl::Seconds(1);
  absl::Duration forward_deadline = absl::Seconds(2);
  // One line per event (who leads, errors); required.
  std::function<void(const std::string&)> log;
  // Waits up to the duration; true if asked to stop (then
  // StandByUntilLeading returns CANCELLED). Required.
  std::function<bool(absl::Duration)> wait;
  // Called once with the standby's port when it first stands by (not if
  // this replica leads at once): e.g. to write --port_file.
  std::function<void(int port)> on_standing_by;
};

// ReplicaStartup: what StandByUntilLeading leaves for the leader to run.
struct ReplicaStartup {
  std::unique_ptr<Follower> follower;
  // Still serving (saying this replica leads and restores its state): shut
  // it down just before the server starts on its port.
  std::unique_ptr<StandbyServer> standby;
  // Held and renewing already (restoring the state can outlast a TTL);
  // options.server->authority is its CheckHeld. Release it at shutdown,
  // once nothing writes.
  std::unique_ptr<ReplicaLease> lease;
  int64_t epoch = 0;
  std::string replica_id;
};

// StandByUntilLeading
//
// Starts the standby (with its follower) on options.server->listen and
// waits until this replica holds the lease; then starts renewing it and
// sets options.server->authority to the lease's CheckHeld (a leader cut off
// from the database stops answering hosts: replica_lease.h). Errors:
// INVALID_ARGUMENT for options the follower refuses; UNAVAILABLE if the standby
// cannot listen; CANCELLED if `wait` asked to stop (the standby is shut down);
// the lease's error if it cannot be taken (FAILED_PRECONDITION: superseded).
absl::StatusOr<ReplicaStartup> StandByUntilLeading(
    const ReplicaStartupOptions& options);

}  // namespace ringfence
