// The replicas of a ringfenced cluster sharing one PostgreSQL database, as
// the database records them (PostgresStore::RecordReplica and ReadCluster,
// postgres_store.h): plain values, for whoever reports cluster status.
//
// Thread safety: plain structs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace ringfence {

// ReplicaRecord: one replica as it last recorded itself.
struct ReplicaRecord {
  std::string replica_id;
  // The gRPC address it advertises ("" if none).
  std::string address;
  // Whether it held the lease when it last recorded itself, and that epoch
  // (0 for a standby). A leader that died keeps the row it left: the lease
  // (ClusterView) says who leads now.
  bool leader = false;
  int64_t epoch = 0;
  // Since it last recorded itself, by the database's clock.
  absl::Duration last_seen_age;
};

// ClusterView: the lease and the replicas, read in one statement (one
// snapshot).
struct ClusterView {
  // The lease's holder and epoch ("" and 0 if it was never taken).
  std::string holder;
  int64_t epoch = 0;
  // Until the lease expires (negative once it has), and since it was last
  // taken or renewed; both by the database's clock.
  absl::Duration expires_in;
  absl::Duration since_renewal;
  // Most recently seen first; at most kMaxClusterReplicas.
  std::vector<ReplicaRecord> replicas;
};

// Most replicas a ClusterView holds.
inline constexpr int kMaxClusterReplicas = 100;
// Replicas not seen for this long are forgotten (their rows deleted).
inline constexpr absl::Duration kForgetReplicasAfter = absl::Hours(24);

}  // namespace ringfence
