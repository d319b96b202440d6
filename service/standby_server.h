// StandbyServer: what a ringfenced replica serves while another replica
// holds the lease (service/README.md, "Replicas"). It has no Controller and
// writes nothing: gRPC health answers NOT_SERVING for the Releases,
// Rollouts and Fleet services (SERVING for the server as a whole and for
// the Cluster service: the process is up), the Cluster service's
// GetClusterStatus answers from the database (cluster_service.h), and
// every other call fails with UNAVAILABLE, saying which replica leads, so
// that clients and load balancers go to the leader.
//
// When the replica takes the lease, ringfenced shuts the standby down and
// starts the real Server on the same port.
//
// Example:
//   auto standby =
//       StandbyServer::Start("0.0.0.0:7443", tls, auth, cluster).value();
//   standby->SetMessage("replica \"db-b:7443\" stands by: replica "
//                       "\"db-a:7443\" leads (lease epoch 4)");
//   ...
//   standby->Shutdown();
//
// Thread safety: SetMessage is safe from any thread; Start and Shutdown are
// called from one.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "service/auth.h"
#include "service/call.h"
#include "service/cluster_service.h"
#include "service/tls.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace ringfence {

class StandbyServer {
 public:
  // Start
  //
  // Listens on `listen` ("host:port"; port 0 picks a free port) with `tls`
  // (nullopt: plaintext). GetClusterStatus authenticates with `auth` (as
  // the Server does) and answers from `cluster`; an empty replica id or
  // address there becomes "<hostname>:<bound port>". UNAVAILABLE if the
  // address cannot be bound.
  static absl::StatusOr<std::unique_ptr<StandbyServer>> Start(
      const std::string& listen, const std::optional<ServerTls>& tls,
      std::optional<TokenAuthenticator> auth = std::nullopt,
      ClusterOptions cluster = {});
  // Shuts down if Shutdown was not called.
  ~StandbyServer();
  StandbyServer(const StandbyServer&) = delete;
  StandbyServer& operator=(const StandbyServer&) = delete;

  // The bound port.
  int port() const { return port_; }

  // SetMessage
  //
  // The message of the UNAVAILABLE every call gets (default "this replica
  // stands by").
  void SetMessage(const std::string& message);

  // Shutdown: stops listening and ends the calls in flight (every answer is
  // immediate).
  void Shutdown();

 private:
  class Answers;
  StandbyServer() = default;

  std::unique_ptr<Answers> answers_;
  std::unique_ptr<CallAuthorizer> authorizer_;
  std::unique_ptr<ClusterService> cluster_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// ListenOnPort
//
// `listen` with its port replaced by `port` ("0.0.0.0:0", 7443 ->
// "0.0.0.0:7443"; "[::]:0" -> "[::]:7443"); a "unix:" address unchanged.
std::string ListenOnPort(const std::string& listen, int port);

}  // namespace ringfence
