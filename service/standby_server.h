// StandbyServer: what a ringfenced replica serves while another replica
// holds the lease (service/README.md, "Replicas"). It has no Controller and
// writes nothing: gRPC health answers NOT_SERVING for the Releases and
// Rollouts services (SERVING for the server as a whole and for the Cluster
// service: the process is up), the Cluster service's GetClusterStatus
// answers from the database (cluster_service.h), and every other call
// fails with UNAVAILABLE, saying which replica leads, so that clients go to
// the leader. Without a Follower, Fleet's health is NOT_SERVING too.
//
// A standby with a Follower (follower.h) is a follower: it also serves
// Fleet.GetAssignment. What needs no new exposure it answers from the
// follower's snapshot; what would grant one (or is evidence only the leader
// counts) it forwards to the leader, with a deadline, and relays the
// leader's answer; when the leader cannot be reached it answers without
// granting anything (Follower::NoGrantAnswer). A snapshot older than its
// bound answers UNAVAILABLE naming the leader. ReportTelemetry is forwarded
// to the leader too, and so is each message of a StreamTelemetry stream (a
// host's check-ins and its telemetry must reach the same place: the leader
// counts check-ins of exposed hosts that have not come up as boot-loop
// attempts); every other call stays UNAVAILABLE naming the leader: it
// changes state that is decided in one place, and clients already go to
// the leader on UNAVAILABLE.
//
// A follower's Fleet health says whether it can serve the fleet: SERVING
// while its snapshot is within its bound (Follower::Fresh) and it is set up
// to forward (`leader_credentials`), NOT_SERVING otherwise and from the
// start of Shutdown. It is updated after every poll, and checked every
// `poll_interval` besides (a poll that waits on the database does not keep
// it SERVING), so it turns NOT_SERVING at most one poll interval after the
// snapshot outgrows its bound. Releases and Rollouts stay NOT_SERVING: their
// health (and cluster status) says which replica leads.
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

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "ringfence/follower.h"
#include "service/auth.h"
#include "service/call.h"
#include "service/cluster_service.h"
#include "service/tls.h"

namespace grpc {
class ChannelCredentials;
class HealthCheckServiceInterface;
class Server;
}  // namespace grpc

namespace ringfence {

// FollowerServing: what a standby needs to answer GetAssignment and
// forward telemetry.
struct FollowerServing {
  // nullptr: no Fleet service (UNAVAILABLE like every call, health
  // NOT_SERVING). Must outlive the StandbyServer.
  Follower* follower = nullptr;
  // Called every `poll_interval` on a thread of the standby's own (e.g.
  // Follower::Refresh, and reading who leads), then Fleet's health is
  // updated; nullptr: nothing is called (health is still checked every
  // `poll_interval`).
  std::function<void()> poll;
  absl::Duration poll_interval = absl::Milliseconds(250);
  // The leader's gRPC address ("" while unknown: nothing is forwarded; a
  // GetAssignment that needs the leader is answered without granting,
  // ReportTelemetry and a stream's next message are UNAVAILABLE). Called on
  // every forwarded call; must be thread-safe.
  std::function<std::string()> leader_address;
  // How to reach the leader; nullptr: never forward (calls that need the
  // leader get UNAVAILABLE naming it, and Fleet's health is NOT_SERVING).
  std::shared_ptr<grpc::ChannelCredentials> leader_credentials;
  // How long a forwarded call (a stream: each of its messages) may take.
  absl::Duration forward_deadline = absl::Seconds(2);
};

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
      ClusterOptions cluster = {}, FollowerServing follower = {});
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

  // Shutdown: turns Fleet's health NOT_SERVING, stops polling and
  // listening, and ends the calls in flight (every answer is immediate, or
  // a forwarded call's deadline away: an open stream ends once the message
  // being forwarded is answered).
  void Shutdown();

 private:
  class Answers;
  class FollowerFleet;
  StandbyServer() = default;

  // Fleet's health from what the follower can serve now (once changed).
  void UpdateFleetHealth();

  std::unique_ptr<Answers> answers_;
  std::unique_ptr<FollowerFleet> fleet_;
  std::function<void()> poll_;
  absl::Duration poll_interval_;
  absl::Notification stop_;
  std::thread poller_;
  std::thread health_watcher_;
  std::unique_ptr<CallAuthorizer> authorizer_;
  std::unique_ptr<ClusterService> cluster_;
  std::unique_ptr<grpc::Server> server_;
  // The server's; nullptr until it starts.
  grpc::HealthCheckServiceInterface* health_ = nullptr;
  absl::Mutex health_mu_;
  bool fleet_serving_ ABSL_GUARDED_BY(health_mu_) = false;
  bool shutting_down_ ABSL_GUARDED_BY(health_mu_) = false;
  int port_ = 0;
};

// ListenOnPort
//
// `listen` with its port replaced by `port` ("0.0.0.0:0", 7443 ->
// "0.0.0.0:7443"; "[::]:0" -> "[::]:7443"); a "unix:" address unchanged.
std::string ListenOnPort(const std::string& listen, int port);

}  // namespace ringfence
