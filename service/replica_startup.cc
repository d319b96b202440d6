#include "service/replica_startup.h"

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ringfence/clock.h"
#include "service/cluster_service.h"

namespace ringfence {
namespace {

// The leader's advertised gRPC address as a standby last read it ("" if no
// live lease), for forwarding.
class LeaderAddress {
 public:
  // This replica's id: it never forwards to itself (it holds the lease
  // while it restores its state, or after a restart under its id). Until
  // set, no address is known.
  void SetSelf(const std::string& replica_id) {
    absl::MutexLock lock(&mu_);
    self_ = replica_id;
  }
  void Set(const ClusterView& cluster) {
    absl::MutexLock lock(&mu_);
    holder_.clear();
    address_.clear();
    if (cluster.expires_in <= absl::ZeroDuration()) return;  // none lives
    holder_ = cluster.holder;
    for (const ReplicaRecord& r : cluster.replicas) {
      if (r.replica_id == cluster.holder) address_ = r.address;
    }
  }
  void Clear() {
    absl::MutexLock lock(&mu_);
    holder_.clear();
    address_.clear();
  }
  std::string Get() const {
    absl::MutexLock lock(&mu_);
    if (self_.empty() || holder_ == self_) return "";
    return address_;
  }

 private:
  mutable absl::Mutex mu_;
  std::string self_ ABSL_GUARDED_BY(mu_);
  std::string holder_ ABSL_GUARDED_BY(mu_);
  std::string address_ ABSL_GUARDED_BY(mu_);
};

// What the standby's poller does: refresh the follower's snapshot and
// learn who leads (logging each distinct refresh error once).
std::function<void()> FollowerPoll(
    Follower* follower, PostgresStore* store,
    std::shared_ptr<LeaderAddress> leader,
    std::function<void(const std::string&)> log) {
  return [follower, store, leader = std::move(leader), log = std::move(log),
          last_error = std::string()]() mutable {
    std::string error;
    if (absl::Status s = follower->Refresh(); !s.ok()) {
      error = absl::StrCat("cannot refresh the follower's snapshot: ",
                           s.ToString());
    }
    if (absl::StatusOr<ClusterView> cluster = store->ReadCluster();
        cluster.ok()) {
      leader->Set(*cluster);
      follower->SetLeaderEpoch(cluster->epoch);
    } else {
      leader->Clear();
    }
    if (error != last_error && !error.empty()) log(error);
    last_error = std::move(error);
  };
}

}  // namespace

absl::StatusOr<ReplicaStartup> StandByUntilLeading(
    const ReplicaStartupOptions& options) {
  ServerOptions& server = *options.server;
  PostgresStore* const store = options.store;
  ReplicaStartup out;
  server.cluster.read = [store] { return store->ReadCluster(); };
  // A standby follows: GetAssignment from a snapshot of the store, new
  // grants forwarded to the leader (service/README.md, "Replicas").
  absl::StatusOr<std::unique_ptr<Follower>> made = Follower::Create(
      store, &RealClock(),
      {.fleet = options.fleet, .max_staleness = options.follower_staleness});
  if (!made.ok()) return made.status();
  out.follower = *std::move(made);
  FollowerServing serving;
  serving.follower = out.follower.get();
  serving.poll_interval = options.follower_poll;
  serving.forward_deadline = options.forward_deadline;
  auto leader = std::make_shared<LeaderAddress>();
  serving.leader_address = [leader] { return leader->Get(); };
  // Forwarding over TLS would need a CA for the leader's certificate:
  // without it, a standby with TLS sends those callers to the leader.
  if (!server.tls.has_value()) {
    serving.leader_credentials = grpc::InsecureChannelCredentials();
  }
  serving.poll = FollowerPoll(out.follower.get(), store, leader, options.log);
  absl::StatusOr<std::unique_ptr<StandbyServer>> started =
      StandbyServer::Start(server.listen, server.tls, server.auth,
                           server.cluster, std::move(serving));
  if (!started.ok()) return started.status();
  out.standby = *std::move(started);
  const int port = out.standby->port();
  out.replica_id = server.cluster.replica_id.empty()
                       ? DefaultReplicaName(port)
                       : server.cluster.replica_id;
  leader->SetSelf(out.replica_id);
  std::string address = server.cluster.address;
  if (address.empty()) address = AdvertisedAddress(server.listen, port);
  // The server listens on the standby's port: the same names.
  server.cluster.replica_id = out.replica_id;
  server.cluster.address = address;
  server.listen = ListenOnPort(server.listen, port);

  const std::string replica_id = out.replica_id;
  out.lease = std::make_unique<ReplicaLease>(
      store, ReplicaLeaseOptions{
                 replica_id, options.lease_ttl, options.tick,
                 [replica_id, log = options.log](const std::string& m) {
                   log(absl::StrCat("replica \"", replica_id, "\": ", m));
                 },
                 address});
  bool standing_by = false;
  StandbyServer* const standby = out.standby.get();
  absl::StatusOr<int64_t> epoch =
      out.lease->WaitUntilLeading(options.wait, [&](const std::string& leads) {
        // Where the leader listens, once the follower's poll has read the
        // replicas' records.
        const std::string at = leader->Get();
        standby->SetMessage(
            absl::StrCat("replica \"", replica_id, "\" stands by: ", leads,
                         at.empty() ? "" : " at ", at, "; call the leader"));
        if (standing_by) return;
        standing_by = true;
        if (options.on_standing_by) options.on_standing_by(port);
      });
  if (!epoch.ok()) {
    out.standby->Shutdown();
    return epoch.status();
  }
  out.epoch = *epoch;
  out.lease->StartRenewing();
  // A leader cut off from PostgreSQL cannot tell whether another replica
  // took over: it answers hosts nothing until it renews (replica_lease.h).
  server.authority = [lease = out.lease.get()] { return lease->CheckHeld(); };
  out.standby->SetMessage(
      absl::StrCat("replica \"", replica_id, "\" leads (lease epoch ",
                   out.epoch, ") and is restoring its state; retry shortly"));
  return out;
}

}  // namespace ringfence
