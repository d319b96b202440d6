// The Cluster service (ringfence/v1/ringfence.proto): GetClusterStatus,
// answered by every replica, the leader (in its Server) and the standbys
// (in their StandbyServer) alike, from the database they share: the lease,
// the replicas as they last recorded themselves, and who answered. A
// single server (SQLite) answers with itself as the only replica.
//
// Thread safety: gRPC calls the handler concurrently; `read` must be safe
// to call concurrently. The CallAuthorizer must outlive the service.
#pragma once

#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ringfence/cluster.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/call.h"

namespace ringfence {

struct ClusterOptions {
  // This replica's id and the gRPC address it advertises (ringfenced:
  // --replica_id and --advertise_address). Empty: once the server listens,
  // DefaultReplicaName and AdvertisedAddress of its port.
  std::string replica_id;
  std::string address;
  // Reads the lease and the replicas (PostgresStore::ReadCluster). Empty
  // (the default): a single server, no lease.
  std::function<absl::StatusOr<ClusterView>()> read;
};

// ClusterStatusToProto
//
// The answer of replica `self` (in `role`) given `view`; with no view, a
// single server (store "sqlite": itself, leading, no lease).
v1::GetClusterStatusResponse ClusterStatusToProto(const ClusterView* view,
                                                  const ClusterOptions& self,
                                                  v1::ReplicaRole role);

class ClusterService final : public v1::Cluster::CallbackService {
 public:
  // `role`: what this process is while the service runs (a Server leads, a
  // StandbyServer stands by).
  ClusterService(const CallAuthorizer* authorizer, ClusterOptions options,
                 v1::ReplicaRole role)
      : authorizer_(authorizer), options_(std::move(options)), role_(role) {}

  // SetBound
  //
  // Once the server listens on `listen` at `port`: sets an empty replica id
  // to DefaultReplicaName(port) and an empty address to
  // AdvertisedAddress(listen, port).
  void SetBound(const std::string& listen, int port);

  grpc::ServerUnaryReactor* GetClusterStatus(
      grpc::CallbackServerContext* ctx, const v1::GetClusterStatusRequest* req,
      v1::GetClusterStatusResponse* resp) override;

 private:
  const CallAuthorizer* const authorizer_;
  absl::Mutex mu_;
  ClusterOptions options_ ABSL_GUARDED_BY(mu_);
  const v1::ReplicaRole role_;
};

// DefaultReplicaName
//
// "<hostname>:<port>" ("localhost:<port>" if the host name is unknown).
std::string DefaultReplicaName(int port);

// AdvertisedAddress
//
// Where clients reach a server listening on `listen` at `port`: `listen`'s
// host with `port` ("127.0.0.1:0", 7443 -> "127.0.0.1:7443"), or
// DefaultReplicaName(port) for a wildcard host ("0.0.0.0", "[::]", "");
// a "unix:" address unchanged.
std::string AdvertisedAddress(const std::string& listen, int port);

}  // namespace ringfence
