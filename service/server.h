// The ringfence gRPC server: the Releases, Rollouts, Fleet and Cluster services
// of ringfence/v1/ringfence.proto over a Controller, plus grpc.health.v1 health
// checking and server reflection, over plaintext, TLS or mutual TLS.
//
// Authentication: bearer tokens (ServerOptions::auth), on top of plaintext,
// TLS or mutual TLS. Without tokens every caller is admin, which Start
// allows only where no other machine can call: on a loopback address, or
// with mutual TLS (only holders of a client certificate connect), unless
// ServerOptions::insecure_no_auth says otherwise. Health checking and
// server reflection need no token: health is what load balancers probe,
// and reflection describes the API, which is public (ringfence.proto), and
// reads or changes nothing; every ringfence.v1 method needs one.
//
// Cluster: GetClusterStatus (cluster_service.h) answers as the leader (or as
// the only server).
//
// Health: "" and every service report SERVING while the server runs, except
// the Fleet service, which reports NOT_SERVING while the controller's store
// fails (Controller::store_healthy()), and Releases, Rollouts and Fleet,
// which report NOT_SERVING while ServerOptions::authority fails (both
// refreshed by UpdateHealth()); everything reports NOT_SERVING once
// Shutdown starts.
//
// Backpressure: telemetry calls (ReportTelemetry, each StreamTelemetry
// message) reserve their events from a budget of max_inflight_events for as
// long as the server holds them; a batch that does not fit fails at once
// with RESOURCE_EXHAUSTED ("retry later") instead of queueing without bound.
//
// The services only translate (protos <-> library types, absl::Status ->
// grpc::Status via ToGrpcStatus) and authenticate (auth.h, call.h); every
// decision is the Controller's. They use the gRPC callback API; unary
// handlers run the (short, thread-safe) Controller call inline. Each is in
// a file of its own (releases_service.h, rollouts_service.h,
// fleet_service.h, with ingestor.h); the Server builds them and wires them
// into one grpc::Server.
//
// Example:
//   ServerOptions options;
//   options.listen = "127.0.0.1:0";
//   auto server = Server::Start(controller.get(), std::move(options)).value();
//   std::printf("listening on %d\n", server->port());
//   ...
//   server->Shutdown(absl::Seconds(5));
//
// Metrics: every call (in-process ones too) is timed by a server
// interceptor, and RenderMetrics() renders them with the Controller's state
// for Prometheus (metrics.h).
//
// Thread safety: Start and Shutdown are called from one thread; port(),
// UpdateHealth() and RenderMetrics() are safe from any. The Controller must
// outlive the Server.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ringfence/controller.h"
#include "ringfence/release_check.h"
#include "service/auth.h"
#include "service/cluster_service.h"
#include "service/tls.h"

namespace grpc {
class Channel;
class HealthCheckServiceInterface;
class Server;
}  // namespace grpc

namespace ringfence {

struct ServerOptions {
  // Address to listen on, "host:port" (default "127.0.0.1:7443"); port 0
  // picks a free port (see Server::port()). Empty: no port, only
  // InProcessChannel() (tests, fuzzing).
  std::string listen = "127.0.0.1:7443";
  // Bearer tokens. nullopt (the default) = no authentication: every call is
  // made by actor "anonymous" with role admin (local use only: see
  // insecure_no_auth).
  std::optional<TokenAuthenticator> auth;
  // Serve without authentication on an address other machines can reach
  // (default false: Start refuses to, unless `listen` is a loopback address
  // or `tls` requires client certificates). For a network where something
  // else authenticates callers.
  bool insecure_no_auth = false;
  // Largest request message in bytes (default 16 MiB); larger ones fail
  // with RESOURCE_EXHAUSTED before they are parsed.
  int max_receive_message_bytes = 16 << 20;
  // Calls open at once on one client connection (HTTP/2 concurrent streams;
  // default 100). Beyond it a client's further calls wait for a stream to
  // end, so one connection cannot hold an unbounded number of watches or
  // telemetry streams.
  int max_streams_per_connection = 100;
  // TLS (nullopt, the default: plaintext). With a client CA: mutual TLS.
  std::optional<ServerTls> tls;
  // Largest telemetry batch (default 100,000 events; keep it equal to
  // ControllerOptions::max_batch_events). Checked before anything is
  // reserved or converted.
  uint64_t max_batch_events = 100000;
  // Most telemetry events held at once across all calls (default 1,000,000;
  // at least max_batch_events).
  uint64_t max_inflight_events = 1000000;
  // Testing: hold each telemetry batch this long (without a thread) after
  // reserving it and before ingesting it, to make ingestion slow on purpose
  // (default 0).
  absl::Duration testing_ingest_delay = absl::ZeroDuration();
  // Acknowledge a telemetry batch only once it is in a committed checkpoint
  // (Controller::AfterCheckpoint; the controller must be ticked, as
  // ringfenced does), so that no acknowledged event is lost if the server
  // dies. Default false here (embedders that do not tick); ringfenced's
  // --ack_telemetry_after_checkpoint defaults to true.
  bool ack_after_checkpoint = false;
  // What CreateRelease and ValidateRelease check a release against: the
  // model, the payload's digest, publisher signatures, content rules
  // (release_check.h). Default (nullptr): a checker with no trusted keys and
  // no content rules (model and digest checks; signed releases are then
  // rejected, since no key is trusted).
  std::unique_ptr<ReleaseChecker> release_checker;
  // Content validations (calls that send a payload) running at once, each on
  // a thread of its own; more get RESOURCE_EXHAUSTED (default 4).
  int max_concurrent_validations = 4;
  // What the Cluster service answers (cluster_service.h). Default: a single
  // server named "<hostname>:<bound port>".
  ClusterOptions cluster;
  // Whether this server may still answer: OK, or the (UNAVAILABLE) status
  // that every call but GetClusterStatus fails with (after it is
  // authenticated; a StreamTelemetry as it opens), and while which the
  // Releases, Rollouts and Fleet services' health is NOT_SERVING.
  // ringfenced on PostgreSQL passes ReplicaLease::CheckHeld: a leader that
  // cannot tell whether another replica took over answers nothing from its
  // state in memory (not a host's assignment, not whether a release is
  // cleared) and its health does not say it leads. Called on every call:
  // must be fast and thread-safe. Default (nullptr): always OK.
  std::function<absl::Status()> authority;
  // The secret by which the HTTP listener of this process passes on its
  // clients' verified certificates (HttpServerOptions::forwarded_peer_key,
  // call.h's kForwardedPeerKey): random, never written anywhere. Empty
  // (the default): such metadata is refused.
  std::string forwarded_peer_key;
};

// IsLoopbackAddress
//
// Whether `listen` ("host:port", "[v6]:port", "unix:path") can be reached
// only from this machine: 127.0.0.0/8, ::1 (also v4-mapped), "localhost",
// or a Unix socket. A host name or a wildcard ("0.0.0.0", "[::]", "") is
// not.
bool IsLoopbackAddress(absl::string_view listen);

// CheckAuthentication
//
// OK unless `options` would serve every caller as admin (no `auth`, no
// client CA) on an address that is not loopback (nor in-process only)
// without `insecure_no_auth`: then FAILED_PRECONDITION saying so. Start
// checks it.
absl::Status CheckAuthentication(const ServerOptions& options);

class Server {
 public:
  // Start
  //
  // Builds the services over `controller` and starts listening.
  // UNAVAILABLE if the address cannot be bound (or the TLS material is
  // refused); INVALID_ARGUMENT if max_inflight_events < max_batch_events;
  // FAILED_PRECONDITION if CheckAuthentication(options) fails.
  static absl::StatusOr<std::unique_ptr<Server>> Start(Controller* controller,
                                                       ServerOptions options);
  // Shuts down (with no grace) if Shutdown was not called.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port (0 if `listen` was empty).
  int port() const { return port_; }

  // InProcessChannel
  //
  // A channel to this server that bypasses the network (and TLS), with no
  // client-side limit on response size (the HTTP listener forwards over
  // it). Calls on it carry no client certificate.
  std::shared_ptr<grpc::Channel> InProcessChannel();

  // RenderMetrics
  //
  // Every metric of the server in the Prometheus text format
  // (ServerMetrics::Render, metrics.h): RPC latencies, telemetry counts,
  // rollouts, decisions, store health, the audit log's head. Safe from any
  // thread while the Server exists.
  std::string RenderMetrics();

  // UpdateHealth
  //
  // Sets the Fleet service's health from Controller::store_healthy() and
  // ServerOptions::authority, and returns it. Call it periodically (ringfenced
  // does, every tick). Safe to call from any thread, also during Shutdown (it
  // then changes nothing).
  bool UpdateHealth();

  // Shutdown
  //
  // Stops accepting calls, reports NOT_SERVING to health checks, ends open
  // StreamTelemetry streams (UNAVAILABLE, at once or after the batch being
  // ingested) and WatchRollout streams (UNAVAILABLE, at their next poll),
  // lets calls in flight finish for up to `grace`, then cancels the rest and
  // waits for them.
  void Shutdown(absl::Duration grace);

 private:
  struct Services;
  Server() = default;

  Controller* controller_ = nullptr;
  std::function<absl::Status()> authority_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  grpc::HealthCheckServiceInterface* health_ = nullptr;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace ringfence
