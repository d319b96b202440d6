#include "service/cluster_service.h"

#include <unistd.h>

#include <cstdio>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/status_map.h"

namespace ringfence {
namespace {

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

}  // namespace

v1::GetClusterStatusResponse ClusterStatusToProto(const ClusterView* view,
                                                  const ClusterOptions& self,
                                                  v1::ReplicaRole role) {
  v1::GetClusterStatusResponse out;
  out.set_answered_by(self.replica_id);
  out.set_answered_by_role(role);
  if (view == nullptr) {
    out.set_store("sqlite");
    v1::ClusterReplica* r = out.add_replicas();
    r->set_replica_id(self.replica_id);
    r->set_address(self.address);
    r->set_role(v1::REPLICA_ROLE_LEADER);
    r->mutable_last_seen_age();
    return out;
  }
  out.set_store("postgres");
  v1::ClusterLease* lease = out.mutable_lease();
  lease->set_holder(view->holder);
  lease->set_epoch(view->epoch);
  SetDuration(view->expires_in, lease->mutable_expires_in());
  SetDuration(view->since_renewal, lease->mutable_since_renewal());
  for (const ReplicaRecord& rec : view->replicas) {
    v1::ClusterReplica* r = out.add_replicas();
    r->set_replica_id(rec.replica_id);
    r->set_address(rec.address);
    r->set_role(rec.leader ? v1::REPLICA_ROLE_LEADER
                           : v1::REPLICA_ROLE_STANDBY);
    r->set_epoch(rec.epoch);
    SetDuration(rec.last_seen_age, r->mutable_last_seen_age());
  }
  return out;
}

std::string DefaultReplicaName(int port) {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof(host), "localhost");
  }
  return absl::StrCat(host, ":", port);
}

std::string AdvertisedAddress(const std::string& listen, int port) {
  if (absl::StartsWith(listen, "unix:") ||
      absl::StartsWith(listen, "unix-abstract:")) {
    return listen;
  }
  const size_t colon = listen.rfind(':');
  const std::string host =
      colon == std::string::npos ? listen : listen.substr(0, colon);
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::" ||
      host == "[::0]") {
    return DefaultReplicaName(port);
  }
  return absl::StrCat(host, ":", port);
}

void ClusterService::SetBound(const std::string& listen, int port) {
  absl::MutexLock lock(&mu_);
  if (options_.replica_id.empty()) {
    options_.replica_id = DefaultReplicaName(port);
  }
  if (options_.address.empty()) {
    options_.address = AdvertisedAddress(listen, port);
  }
}

grpc::ServerUnaryReactor* ClusterService::GetClusterStatus(
    grpc::CallbackServerContext* ctx, const v1::GetClusterStatusRequest* req,
    v1::GetClusterStatusResponse* resp) {
  return authorizer_->Unary(
      ctx, kReaderRoles, "GetClusterStatus", *req, [&](const Principal&) {
        ClusterOptions self;
        {
          absl::MutexLock lock(&mu_);
          self = options_;
        }
        if (!self.read) {
          *resp = ClusterStatusToProto(nullptr, self, role_);
          return grpc::Status::OK;
        }
        absl::StatusOr<ClusterView> view = self.read();
        if (!view.ok()) return ToGrpcStatus(view.status());
        *resp = ClusterStatusToProto(&*view, self, role_);
        return grpc::Status::OK;
      });
}

}  // namespace ringfence
