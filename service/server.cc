#include "service/server.h"

#include <arpa/inet.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <netinet/in.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ringfence/error_text.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/call.h"
#include "service/cluster_service.h"
#include "service/fleet_service.h"
#include "service/ingestor.h"
#include "service/metrics.h"
#include "service/releases_service.h"
#include "service/rollouts_service.h"

namespace ringfence {

struct Server::Services {
  std::unique_ptr<ServerMetrics> metrics;
  std::unique_ptr<CallAuthorizer> authorizer;
  // The Cluster service's: without the authority (cluster status says who
  // leads, also while this replica may not).
  std::unique_ptr<CallAuthorizer> cluster_authorizer;
  // Set when the server starts shutting down: streams end.
  std::atomic<bool> shutting_down{false};
  std::unique_ptr<Ingestor> ingestor;
  // Checks releases (metadata, digest, signature, content rules).
  std::unique_ptr<ReleaseChecker> release_checker;
  std::unique_ptr<ReleasesService> releases;
  std::unique_ptr<RolloutsService> rollouts;
  std::unique_ptr<FleetService> fleet;
  std::unique_ptr<ClusterService> cluster;
};

bool IsLoopbackAddress(absl::string_view listen) {
  if (absl::StartsWith(listen, "unix:") ||
      absl::StartsWith(listen, "unix-abstract:")) {
    return true;
  }
  absl::string_view host;
  if (absl::StartsWith(listen, "[")) {
    const size_t end = listen.find(']');
    if (end == absl::string_view::npos) return false;
    host = listen.substr(1, end - 1);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == absl::string_view::npos) return false;
    host = listen.substr(0, colon);
  }
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  const std::string h(host);
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) ||
           (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  }
  return false;
}

absl::Status CheckAuthentication(const ServerOptions& options) {
  const bool mutual_tls =
      options.tls.has_value() && !options.tls->client_ca_pem.empty();
  if (options.auth.has_value() || mutual_tls || options.insecure_no_auth ||
      options.listen.empty() || IsLoopbackAddress(options.listen)) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "listen: ", QuoteForError(options.listen),
      " is not a loopback address, and without bearer tokens "
      "(--auth_tokens_file) or mutual TLS (--client_ca) every caller "
      "would be admin; configure one, listen on 127.0.0.1, or accept "
      "that explicitly with --insecure_no_auth"));
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(Controller* controller,
                                                      ServerOptions options) {
  if (absl::Status s = CheckAuthentication(options); !s.ok()) return s;
  if (options.max_streams_per_connection <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_streams_per_connection: must be > 0 (got ",
                     options.max_streams_per_connection, ")"));
  }
  if (options.max_batch_events == 0 ||
      options.max_inflight_events < options.max_batch_events) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_inflight_events (", options.max_inflight_events,
        ") must be at least max_batch_events (", options.max_batch_events,
        "), which must be > 0: else a full batch could never be admitted"));
  }
  std::unique_ptr<Server> server(new Server());
  server->controller_ = controller;
  server->services_ = std::make_unique<Services>();
  Services& svc = *server->services_;
  svc.metrics = std::make_unique<ServerMetrics>(controller);
  svc.cluster_authorizer = std::make_unique<CallAuthorizer>(
      options.auth, nullptr, options.forwarded_peer_key);
  svc.authorizer = std::make_unique<CallAuthorizer>(
      std::move(options.auth), options.authority, options.forwarded_peer_key);
  svc.ingestor = std::make_unique<Ingestor>(
      controller, options.max_batch_events, options.max_inflight_events,
      options.testing_ingest_delay, options.ack_after_checkpoint);
  svc.release_checker = std::move(options.release_checker);
  if (svc.release_checker == nullptr) {
    absl::StatusOr<std::unique_ptr<ReleaseChecker>> checker =
        ReleaseChecker::Create({});
    if (!checker.ok()) return checker.status();
    svc.release_checker = *std::move(checker);
  }
  svc.releases = std::make_unique<ReleasesService>(
      controller, svc.authorizer.get(), svc.release_checker.get(),
      std::max(1, options.max_concurrent_validations));
  svc.rollouts = std::make_unique<RolloutsService>(
      controller, svc.authorizer.get(), &svc.shutting_down);
  server->authority_ = options.authority;
  svc.fleet = std::make_unique<FleetService>(controller, svc.authorizer.get(),
                                             svc.ingestor.get());
  svc.cluster = std::make_unique<ClusterService>(svc.cluster_authorizer.get(),
                                                 std::move(options.cluster),
                                                 v1::REPLICA_ROLE_LEADER);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Refuse to share the port with another process (the default allows it).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (!options.listen.empty()) {
    builder.AddListeningPort(options.listen, ServerCredentials(options.tls),
                             &server->port_);
  }
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             options.max_streams_per_connection);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(svc.metrics->NewInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(svc.releases.get());
  builder.RegisterService(svc.rollouts.get());
  builder.RegisterService(svc.fleet.get());
  builder.RegisterService(svc.cluster.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr ||
      (!options.listen.empty() && server->port_ == 0)) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", QuoteForError(options.listen),
                     " (address in use, not host:port, or TLS material "
                     "refused?)"));
  }
  svc.cluster->SetBound(options.listen, server->port_);
  server->health_ = server->server_->GetHealthCheckService();
  if (server->health_ != nullptr) {
    for (const char* service :
         {v1::Releases::service_full_name(), v1::Rollouts::service_full_name(),
          v1::Fleet::service_full_name(), v1::Cluster::service_full_name()}) {
      server->health_->SetServingStatus(service, true);
    }
    server->UpdateHealth();
  }
  return server;
}

std::shared_ptr<grpc::Channel> Server::InProcessChannel() {
  grpc::ChannelArguments args;
  // Responses are bounded by the server; the client's default 4 MiB would
  // refuse e.g. a ListRollouts of many large plans asked for over HTTP.
  args.SetMaxReceiveMessageSize(-1);
  return server_->InProcessChannel(args);
}

std::string Server::RenderMetrics() {
  return services_->metrics->Render(services_->ingestor->counts());
}

bool Server::UpdateHealth() {
  const bool leads = authority_ == nullptr || authority_().ok();
  const bool healthy = leads && controller_->store_healthy();
  if (health_ != nullptr) {
    // A store failing: agents fail over; reads and operator actions stay
    // available. No longer surely leading: nothing is served but cluster
    // status, and health must not say this replica leads.
    health_->SetServingStatus(v1::Fleet::service_full_name(), healthy);
    health_->SetServingStatus(v1::Releases::service_full_name(), leads);
    health_->SetServingStatus(v1::Rollouts::service_full_name(), leads);
    // Cluster status reads the store: cut off from it (the lease not
    // renewed) or with its writes failing, it cannot answer either.
    health_->SetServingStatus(v1::Cluster::service_full_name(), healthy);
  }
  return healthy;
}

Server::~Server() {
  if (!shut_down_ && server_ != nullptr) Shutdown(absl::ZeroDuration());
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  services_->shutting_down.store(true, std::memory_order_release);
  if (health_ != nullptr) health_->Shutdown();
  services_->fleet->EndStreams();
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(grace));
  server_->Wait();
}

}  // namespace ringfence
